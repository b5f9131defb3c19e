"""The output's layout and the job it records: the one place that knows what a store holds.

Every sink writes, and every reader (``tilerun info``, exports, reports, pyramids) reads, the
layout defined here, whichever back end keeps the store:

* :mod:`~tilerun.sinks.layout.variables`: the output's variables (``logits``, ``labels``,
  ``probabilities``), their types, chunks, codecs and georeferencing (:class:`OutputLayout`);
* :mod:`~tilerun.sinks.layout.codes`: the stored codes of the uint8 variables;
* :mod:`~tilerun.sinks.layout.store`: the bookkeeping beside them (the ``tilerun`` record,
  ``chunks_done``, the resume carries, the staging name) and the readers of finished outputs;
* :mod:`~tilerun.sinks.layout.job_record`: the job an output records (content digests,
  fingerprint) and how two jobs are compared, which is what ``--resume`` trusts.
"""

from tilerun.sinks.layout.codes import LABEL_FILL, PROBABILITY_FILL, PROBABILITY_SCALE
from tilerun.sinks.layout.store import (
    CARRY,
    DONE,
    RECORD,
    STAGING_SUFFIX,
    open_finished,
    open_target,
    output_store,
    run_record,
)
from tilerun.sinks.layout.variables import OutputLayout

__all__ = [
    "CARRY",
    "DONE",
    "LABEL_FILL",
    "PROBABILITY_FILL",
    "PROBABILITY_SCALE",
    "RECORD",
    "STAGING_SUFFIX",
    "OutputLayout",
    "open_finished",
    "open_target",
    "output_store",
    "run_record",
]
