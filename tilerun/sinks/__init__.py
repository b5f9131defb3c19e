"""Sinks (writers): where finished chunks go.

One seam, two storage back ends, and the parts they share:

* :mod:`~tilerun.sinks.base`: :class:`Sink`, the seam the engine writes through (any sink
  works: ``tilerun.run(..., sink=...)``);
* :mod:`~tilerun.sinks.zarr_sink`: what both Zarr back ends share (chunk writes, checksums,
  completion records, lock checks, viewer pyramids), with its two back ends
  :mod:`~tilerun.sinks.local` (:class:`ZarrSink`: a folder, staged then renamed) and
  :mod:`~tilerun.sinks.object_store` (``ObjectStoreSink``: written in place, finished by a
  flag; :mod:`~tilerun.sinks.objects` talks to the stores);
* :mod:`~tilerun.sinks.layout`: the one owner of the output's layout and its job record;
* :mod:`~tilerun.sinks.lease`: the single-writer lock (a lease) of both back ends;
* :mod:`~tilerun.sinks.integrity`: chunk checksums;
* :mod:`~tilerun.sinks.pyramids`: OME-NGFF viewer pyramids, which a sink writes into its own
  store when :meth:`Sink.finalize` asks for them;
* :mod:`~tilerun.sinks.job_summary`: a job's ``tilerun-job.json``.

:func:`sink_for` picks the back end for an output path or URL.
"""

from pathlib import Path
from typing import Any

from tilerun.sinks.base import Sink
from tilerun.sinks.layout import (
    LABEL_FILL,
    PROBABILITY_FILL,
    PROBABILITY_SCALE,
    OutputLayout,
    output_store,
)
from tilerun.sinks.local import ZarrSink, check_output_path, recover_swap
from tilerun.sinks.objects import object_url
from tilerun.sinks.pyramids import PyramidRequest


def sink_for(out: str | Path, overwrite: bool = False) -> Sink:
    """The Zarr sink for ``out``: a local path (staged, then renamed) or an object-store URL
    (``s3://``, ``gs://``, ``az://``…: written in place, finished by a flag)."""
    url = object_url(out)
    if url is None:
        return ZarrSink(out, overwrite=overwrite)
    from tilerun.sinks.object_store import ObjectStoreSink

    return ObjectStoreSink(url, overwrite=overwrite)


def completed_output(path: str | Path) -> dict[str, Any] | None:
    """The record of a complete output (local or object storage), else None: see
    :meth:`~tilerun.sinks.layout.store.OutputStore.completed`. A replacement a kill cut short
    is finished (or undone) first."""
    url = object_url(path)
    if url is None:
        recover_swap(Path(path))
    else:
        from tilerun.sinks.object_store import recover

        recover(url)
    return output_store(path).completed()


__all__ = [
    "LABEL_FILL",
    "PROBABILITY_FILL",
    "PROBABILITY_SCALE",
    "OutputLayout",
    "PyramidRequest",
    "Sink",
    "ZarrSink",
    "check_output_path",
    "completed_output",
    "object_url",
    "sink_for",
]
