"""A low-resolution tissue mask laid over the full-resolution output: which windows hold tissue.

:class:`TissueMask` is the geometry between a mask made on a thumbnail (or loaded from a
file) and the output grid the engine tiles: each mask pixel covers a ``sy × sx`` block of
output pixels, with any positive, not necessarily integer, scale. It answers the two
questions tile skipping asks, :meth:`TissueMask.covers` and :meth:`TissueMask.window_fraction`,
and knows nothing of how the mask was made (:mod:`tilerun.tissue.detect`) or read
(:mod:`tilerun.tissue.files`), so either can change without touching the window arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tilerun.geometry import Window


@dataclass(frozen=True, eq=False)
class TissueMask:
    """A low-resolution tissue mask and how it maps onto the full-resolution output.

    ``mask[i, j]`` covers output rows ``[i * sy, (i + 1) * sy)`` and columns
    ``[j * sx, (j + 1) * sx)``, with ``scale = (sy, sx)`` full-resolution pixels per mask pixel
    (any positive float; not necessarily an integer, not necessarily equal on both axes).
    The mask is stored as a read-only bool array.
    """

    mask: np.ndarray
    scale: tuple[float, float]

    def __post_init__(self) -> None:
        mask = np.array(self.mask, dtype=bool)  # a copy: the caller's array stays theirs
        if mask.ndim != 2 or 0 in mask.shape:
            raise ValueError(f"a tissue mask must be 2-D and non-empty, got shape {mask.shape}")
        sy, sx = (float(s) for s in self.scale)
        if not (math.isfinite(sy) and math.isfinite(sx) and sy > 0 and sx > 0):
            raise ValueError(f"scale must be two positive numbers, got {self.scale}")
        mask.flags.writeable = False
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "scale", (sy, sx))

    @classmethod
    def fit(cls, mask: np.ndarray, height: int, width: int) -> TissueMask:
        """A mask stretched over a ``height × width`` output: ``scale = (height/h, width/w)``."""
        h, w = np.shape(mask)[-2:]
        return cls(mask, (height / h, width / w))

    @property
    def fraction(self) -> float:
        """Fraction of mask pixels that are tissue."""
        return float(self.mask.mean())

    def _span(self, start: int, stop: int, axis: int) -> tuple[int, int]:
        """Mask indices ``[i0, i1)`` touching output pixels ``[start, stop)`` (floor/ceil)."""
        s = self.scale[axis]
        n = self.mask.shape[axis]
        i0 = min(max(math.floor(start / s), 0), n)
        i1 = min(max(math.ceil(stop / s), 0), n)
        return i0, i1

    def covers(self, window: Window) -> bool:
        """Whether any tissue lies under ``window`` (output pixels).

        A mask pixel only partly under the window counts (floor of the start, ceil of the
        end): when in doubt, the model runs. Parts of the window outside the mask's extent
        hold no tissue; an empty window covers nothing.
        """
        if window.is_empty:
            return False
        y0, y1 = self._span(window.y, window.bottom, 0)
        x0, x1 = self._span(window.x, window.right, 1)
        return bool(self.mask[y0:y1, x0:x1].any())

    def window_fraction(self, window: Window) -> float:
        """Fraction of the window's in-extent area that is tissue, partial mask pixels weighted.

        Each mask pixel under the window counts by the area it shares with it, so the result
        is exact for the mask as a piecewise-constant image. The part of the window outside
        the mask's extent (``[0, h*sy) × [0, w*sx)``) is left out of both numerator and
        denominator; a window with no area inside gives 0.0.
        """
        y0, y1 = self._span(window.y, window.bottom, 0)
        x0, x1 = self._span(window.x, window.right, 1)
        if window.is_empty or y1 <= y0 or x1 <= x0:
            return 0.0
        wy = _overlaps(window.y, window.bottom, y0, y1, self.scale[0])
        wx = _overlaps(window.x, window.right, x0, x1, self.scale[1])
        area = float(wy.sum() * wx.sum())
        if area <= 0:
            return 0.0
        tissue = float(wy @ self.mask[y0:y1, x0:x1].astype(np.float64) @ wx)
        return min(max(tissue / area, 0.0), 1.0)


def _overlaps(start: int, stop: int, i0: int, i1: int, s: float) -> np.ndarray:
    """Length of ``[start, stop)`` shared with each mask cell ``[i*s, (i+1)*s)``, i0 <= i < i1."""
    idx = np.arange(i0, i1, dtype=np.float64)
    return np.clip(np.minimum(stop, (idx + 1) * s) - np.maximum(start, idx * s), 0.0, None)
