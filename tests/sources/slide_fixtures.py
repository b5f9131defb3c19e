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
import tifffile


def halve(image: np.ndarray) -> np.ndarray:
    """2×2 box mean (odd last row/column dropped), rounded: how the pyramid levels are made."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    blocks = image[: 2 * h, : 2 * w].reshape(h, 2, w, 2, image.shape[2]).astype(np.float64)
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)


def write_levels(
    path: Path, levels: list[np.ndarray], *, mpp: float | None = 0.5, tile: int = 64
) -> Path:
    """Write the given level images (largest first, ``(h, w, 3|4)`` uint8) as successive tiled
    directories. OpenSlide takes the sizes as they are: ``downsample = (w0/w + h0/h) / 2``.
    ``mpp`` (µm at level 0) goes into X/YResolution in pixels per centimetre, or nothing."""
    with tifffile.TiffWriter(path) as tw:
        for i, level in enumerate(levels):
            options: dict = {"tile": (tile, tile), "photometric": "rgb", "compression": "zlib"}
            if level.shape[2] == 4:
                options["extrasamples"] = ["unassalpha"]
            if i > 0:
                options["subfiletype"] = 1  # reduced-resolution image
            if mpp is not None:
                scale = levels[0].shape[1] / level.shape[1]
                per_cm = 1e4 / (mpp * scale)
                options["resolution"] = (per_cm, per_cm)
                options["resolutionunit"] = "CENTIMETER"
            tw.write(level, **options)
    return path


def write_pyramid(
    path: Path,
    image: np.ndarray,
    *,
    levels: int = 3,
    mpp: float | None = 0.5,
    tile: int = 64,
) -> Path:
    """Write ``image`` (``(h, w, 3)`` RGB or ``(h, w, 4)`` RGBA uint8) as a tiled pyramid of
    ``levels`` levels, each the :func:`halve` of the previous."""
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(halve(pyramid[-1]))
    return write_levels(path, pyramid, mpp=mpp, tile=tile)


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
    """RGB: red = 2·column, green = 2·row, blue constant. Linear, and :func:`halve` keeps it
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
