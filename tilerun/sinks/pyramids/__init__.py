"""OME-NGFF viewer pyramids, written by the sink that owns the store.

* :mod:`~tilerun.sinks.pyramids.request`: :class:`PyramidRequest`, what the engine asks a sink
  for in :meth:`~tilerun.sinks.base.Sink.finalize` (which pyramids, placed how);
* :mod:`~tilerun.sinks.pyramids.ngff`: the label and probability pyramids, and
  :func:`write_pyramids`, which a Zarr sink calls on its own store before publishing;
* :mod:`~tilerun.sinks.pyramids.stores`: where they are written, a folder or object storage
  (each sink hands its own kind);
* :mod:`~tilerun.sinks.pyramids.metadata`: the NGFF metadata.
"""

from tilerun.sinks.pyramids.ngff import (
           write_label_pyramid,
           write_probability_pyramid,
           write_pyramids,
)
from tilerun.sinks.pyramids.request import PyramidRequest
from tilerun.sinks.pyramids.stores import Pyramid

__all__ = ["Pyramid", "PyramidRequest", "write_label_pyramid", "write_probability_pyramid",
           "write_pyramids"]
