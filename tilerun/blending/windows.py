"""Weight windows for blending overlapping tiles.

The blended logit at a pixel is the weighted mean of every tile covering it,
``out = Σ_t w_t · z_t / Σ_t w_t``, accumulated in float32 whatever the model's precision.
Windows are separable, ``w(y, x) = w1(y) · w1(x)``, evaluated at pixel centres
``u = (i + 0.5) / T`` for ``i in [0, T)`` so every weight is strictly positive (the plain Hann
window is zero at its ends, which would leave border pixels of the first tile with no weight):

* ``gaussian``: ``exp(-(u - 0.5)² / (2 σ²))`` with ``σ = sigma`` as a fraction of ``T``
  (default 0.125, as in nnU-Net), scaled to a peak of 1;
* ``hann``:     ``sin²(π u)``;
* ``linear``:   ``1 - |2u - 1|`` (a pyramid in 2-D);
* ``constant``: ``1`` (plain averaging);
* ``crop``:     ``1`` on the tile's core ``[M, M + S)`` and ``0`` on the margin, the original
  U-Net overlap-tile strategy: the margin is context only, and the cores tile the image exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tilerun.blending.modes import BLEND_MODES
from tilerun.errors import OptionError
from tilerun.geometry import TileGrid

#: Floor of the 1-D profiles, so 2-D weights (products) stay ≥ 1e-12, far from float32
#: underflow even for a very narrow gaussian: every covered pixel keeps a positive weight.
MIN_WEIGHT = 1e-6


def _centres(tile: int) -> np.ndarray:
    return (np.arange(tile, dtype=np.float64) + 0.5) / tile


def _gaussian(tile: int, sigma: float) -> np.ndarray:
    u = _centres(tile)
    return np.exp(-((u - 0.5) ** 2) / (2.0 * sigma**2))


def _hann(tile: int, sigma: float) -> np.ndarray:
    return np.sin(np.pi * _centres(tile)) ** 2


def _linear(tile: int, sigma: float) -> np.ndarray:
    return 1.0 - np.abs(2.0 * _centres(tile) - 1.0)


def _constant(tile: int, sigma: float) -> np.ndarray:
    return np.ones(tile)


_PROFILES: dict[str, Callable[[int, float], np.ndarray]] = {
    "gaussian": _gaussian,
    "hann": _hann,
    "linear": _linear,
    "constant": _constant,
}


@dataclass(frozen=True)
class Blend:
    """A blending mode and its parameter; ``weights(grid)`` gives the tile's 2-D window."""

    name: str = "gaussian"
    sigma: float = 0.125

    def __post_init__(self) -> None:
        if self.name not in BLEND_MODES:
            raise OptionError("--blend", f"unknown mode {self.name!r}; choose from {BLEND_MODES}")
        if not self.sigma > 0:
            raise OptionError("--sigma", f"must be > 0, got {self.sigma}")

    def profile(self, grid: TileGrid) -> np.ndarray:
        """The 1-D window along one axis (float32, length ``T``)."""
        if self.name == "crop":
            w = np.zeros(grid.tile)
            w[grid.margin : grid.margin + grid.stride] = 1.0
        else:
            w = _PROFILES[self.name](grid.tile, self.sigma)
            w = np.maximum(w / w.max(), MIN_WEIGHT)
        return w.astype(np.float32)

    def weights(self, grid: TileGrid) -> np.ndarray:
        """The separable 2-D window ``w1(y) · w1(x)``, shape ``(T, T)``, float32."""
        p = self.profile(grid)
        return np.outer(p, p)

    def support(self, grid: TileGrid) -> tuple[int, int]:
        """``[start, stop)`` within the tile where the 1-D weight is non-zero."""
        nonzero = np.flatnonzero(self.profile(grid) > 0)
        return int(nonzero[0]), int(nonzero[-1]) + 1
