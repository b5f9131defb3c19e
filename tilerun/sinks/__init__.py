"""Sinks (writers): where finished chunks go."""

from tilerun.sinks.base import Sink
from tilerun.sinks.zarr import LABEL_FILL, OutputLayout, ZarrSink, check_output_path

__all__ = ["LABEL_FILL", "OutputLayout", "Sink", "ZarrSink", "check_output_path"]
