"""Synthetic pyramidal TIFFs that OpenSlide opens as ``generic-tiff``.

OpenSlide's generic-tiff reader wants a tiled TIFF whose pyramid levels are successive
top-level directories (it ignores SubIFDs), each tiled; it maps ``XResolution`` with
``ResolutionUnit`` centimetre (or inch) of the first directory to ``openslide.mpp-x/y``, and
reads an unassociated alpha channel (transparent pixels come back as RGBA ``(0, 0, 0, 0)``).
It never sets ``openslide.bounds-*`` or ``openslide.background-color``: tests patch those in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tilerun import sample
from tilerun.sample import write_levels


def write_pyramid(
    path: Path,
    image: np.ndarray,
    *,
    levels: int = 3,
    mpp: float | None = 0.5,
    tile: int = 64,
) -> Path:
    """:func:`tilerun.sample.write_pyramid` with small tiles and three levels by default."""
    return sample.write_pyramid(path, image, levels=levels, mpp=mpp, tile=tile)


def write_skewed(path: Path) -> Path:
    """A two-level slide whose level 1 has a non-integer downsample, 2.041666…: level 0 is
    32×25 (grey), level 1 is 16×12 with red = 16·column and green = 16·row, so a level-1 read
    at any position can be checked against the stored values."""
    level0 = np.full((25, 32, 3), 100, np.uint8)
    level1 = np.empty((12, 16, 3), np.uint8)
    level1[..., 0] = 16 * np.arange(16)[None, :]
    level1[..., 1] = 16 * np.arange(12)[:, None]
    level1[..., 2] = 7
    return write_levels(path, [level0, level1], mpp=0.5, tile=16)


def ramp_image(height: int = 96, width: int = 128) -> np.ndarray:
    """RGB: red = 2·column, green = 2·row, blue constant. Linear, and ``sample.halve`` keeps it
    exactly linear (a level-``L`` pixel holds 2·its centre's level-0 pixel index), so any
    normalised symmetric filter must give ``2·x`` at level-0 pixel index ``x``."""
    if height > 128 or width > 128:
        raise ValueError("the ramp must stay below 256")
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = 2 * np.arange(width)[None, :]
    image[..., 1] = 2 * np.arange(height)[:, None]
    image[..., 2] = 90
    return image


def transparent_image(height: int = 128, width: int = 160) -> np.ndarray:
    """RGBA: dark tissue-like texture, fully transparent in the top-left 40×48 corner and a
    half-transparent band at rows 100..109."""
    rng = np.random.default_rng(3)
    image = np.empty((height, width, 4), np.uint8)
    image[..., :3] = rng.integers(20, 120, size=(height, width, 3), dtype=np.uint8)
    image[..., 3] = 255
    image[:40, :48, 3] = 0
    image[100:110, :, 3] = 128
    return image


def stripes_image(height: int = 128, width: int = 128) -> np.ndarray:
    """RGB 1-pixel black/white vertical stripes: aliases badly under point sampling."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, ::2] = 255
    return image
