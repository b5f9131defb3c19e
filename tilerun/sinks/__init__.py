"""Sinks (writers): where finished chunks go."""

from pathlib import Path

from tilerun.sinks.base import Sink
from tilerun.sinks.layout import LABEL_FILL, PROBABILITY_FILL, PROBABILITY_SCALE, OutputLayout
from tilerun.sinks.objects import object_url
from tilerun.sinks.zarr import ZarrSink, check_output_path, completed_output


def sink_for(out: str | Path, overwrite: bool = False) -> Sink:
    """The Zarr sink for ``out``: a local path (staged, then renamed) or an object-store URL
    (``s3://``, ``gs://``, ``az://``…: written in place, finished by a flag)."""
    url = object_url(out)
    if url is None:
        return ZarrSink(out, overwrite=overwrite)
    from tilerun.sinks.object_sink import ObjectStoreSink

    return ObjectStoreSink(url, overwrite=overwrite)

__all__ = [
    "LABEL_FILL",
    "PROBABILITY_FILL",
    "PROBABILITY_SCALE",
    "OutputLayout",
    "Sink",
    "ZarrSink",
    "check_output_path",
    "completed_output",
    "object_url",
    "sink_for",
]
