"""Sinks (writers): where finished chunks go."""

from tilerun.sinks.base import Sink
from tilerun.sinks.layout import LABEL_FILL, PROBABILITY_FILL, PROBABILITY_SCALE, OutputLayout
from tilerun.sinks.zarr import ZarrSink, check_output_path, completed_output

__all__ = [
    "LABEL_FILL",
    "PROBABILITY_FILL",
    "PROBABILITY_SCALE",
    "OutputLayout",
    "Sink",
    "ZarrSink",
    "check_output_path",
    "completed_output",
]
