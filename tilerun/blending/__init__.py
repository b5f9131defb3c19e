"""Blending: the weight windows that merge overlapping tiles.

:data:`BLEND_MODES` comes without numpy; :class:`Blend` is imported on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tilerun.blending.modes import BLEND_MODES

if TYPE_CHECKING:
    from tilerun.blending.windows import Blend

__all__ = ["BLEND_MODES", "Blend"]


def __getattr__(name: str) -> Any:
    if name == "Blend":
        from tilerun.blending.windows import Blend

        return Blend
    raise AttributeError(f"module 'tilerun.blending' has no attribute {name!r}")
