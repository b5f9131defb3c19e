"""Model backends: eager PyTorch, ``torch.compile``, ONNX Runtime and OpenVINO.

:mod:`~tilerun.backends.base` is the seam, :mod:`~tilerun.backends.select` picks the fastest
exact one (``auto``), :mod:`~tilerun.backends.cache` keeps conversions between runs.
"""

from tilerun.backends.base import Backend, BackendWarning, Compiled, ConversionError, Target
from tilerun.backends.select import (
    BACKENDS,
    CHOICES,
    TOLERANCE,
    Selection,
    as_loaded,
    auto_order,
    relative_error,
    select_backend,
)

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
