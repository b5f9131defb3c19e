"""Blending: the weight windows that merge overlapping tiles."""

from tilerun.blending.windows import BLEND_MODES, Blend

__all__ = ["BLEND_MODES", "Blend"]
