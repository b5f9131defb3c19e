"""Model backends: eager PyTorch, ``torch.compile``, ONNX Runtime and OpenVINO.

:mod:`~tilerun.backends.base` is the seam, :mod:`~tilerun.backends.select` picks the fastest
exact one (``auto``), :mod:`~tilerun.backends.cache` keeps conversions between runs. The names
(:data:`CHOICES`) come without torch; the rest is imported on first use (PEP 562).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tilerun.backends.names import CHOICES

if TYPE_CHECKING:
    from tilerun.backends.base import Backend, BackendWarning, Compiled, ConversionError, Target
    from tilerun.backends.select import (
        BACKENDS,
        TOLERANCE,
        Selection,
        as_loaded,
        auto_order,
        relative_error,
        select_backend,
    )

_BASE = ("Backend", "BackendWarning", "Compiled", "ConversionError", "Target")
_SELECT = ("BACKENDS", "TOLERANCE", "Selection", "as_loaded", "auto_order", "relative_error",
           "select_backend")

__all__ = [
    "BACKENDS",
    "CHOICES",
    "TOLERANCE",
    "Backend",
    "BackendWarning",
    "Compiled",
    "ConversionError",
    "Selection",
    "Target",
    "as_loaded",
    "auto_order",
    "relative_error",
    "select_backend",
]


def __getattr__(name: str) -> Any:
    if name in _BASE:
        return getattr(import_module("tilerun.backends.base"), name)
    if name in _SELECT:
        return getattr(import_module("tilerun.backends.select"), name)
    raise AttributeError(f"module 'tilerun.backends' has no attribute {name!r}")
