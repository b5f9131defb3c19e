"""Synthetic, georeferenced land-cover scenes whose ground truth is known.

Classes (:data:`CLASSES`): water, forest, field, built-up. The class map is drawn from smoothed
random fields (so regions have natural, blobby boundaries); each class gets its own colour and
texture (still water, canopy speckle, striped fields, a grid of roofs and streets). Deterministic
for a given seed: tests and training scripts regenerate scenes instead of storing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES = ("water", "forest", "field", "built-up")
COLOURS = ((38, 84, 140), (34, 92, 40), (176, 160, 84), (150, 140, 136))

#: A UTM 33N origin and 10 m pixels, like a Sentinel-2 excerpt.
CRS = "EPSG:32633"
PIXEL_SIZE = 10.0
ORIGIN = (500_000.0, 5_200_000.0)


@dataclass(frozen=True)
class Scene:
    """``image`` (3, H, W) uint8 and ``truth`` (H, W) uint8 class indices."""

    image: np.ndarray
    truth: np.ndarray


def _smooth_field(rng: np.random.Generator, height: int, width: int, scale: int) -> np.ndarray:
    """Low-frequency noise: a coarse random grid, bilinearly upsampled."""
    gh, gw = height // scale + 2, width // scale + 2
    coarse = rng.normal(size=(gh, gw))
    ys = np.linspace(0, gh - 1.001, height)
    xs = np.linspace(0, gw - 1.001, width)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    c = coarse
    top = c[y0][:, x0] * (1 - fx) + c[y0][:, x0 + 1] * fx
    bottom = c[y0 + 1][:, x0] * (1 - fx) + c[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def make_scene(height: int = 1024, width: int = 1024, seed: int = 0) -> Scene:
    """Draw a scene; the same seed always gives the same pixels."""
    rng = np.random.default_rng(seed)
    fields = np.stack([_smooth_field(rng, height, width, 96) for _ in CLASSES])
    fields[0] -= 0.6  # water is the rarest class
    truth = fields.argmax(axis=0).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    noise = rng.normal(size=(height, width))
    textures = {
        0: 4 * _smooth_field(rng, height, width, 8),
        1: 18 * noise + 10 * _smooth_field(rng, height, width, 4),
        2: 14 * np.sign(np.sin((xx + 0.6 * yy) / 3.0)) + 4 * noise,
        3: np.where((xx % 24 < 4) | (yy % 24 < 4), -45, 12 * _smooth_field(rng, height, width, 6)),
    }
    image = np.zeros((3, height, width), np.float32)
    for k, colour in enumerate(COLOURS):
        where = truth == k
        for band in range(3):
            image[band][where] = colour[band] + textures[k][where]
    return Scene(np.clip(image, 0, 255).astype(np.uint8), truth)


def write_scene(path: str | Path, height: int = 1024, width: int = 1024, seed: int = 0) -> Scene:
    """Write a scene as a tiled, deflate-compressed GeoTIFF; returns it (truth included)."""
    import rasterio
    from rasterio.transform import from_origin

    scene = make_scene(height, width, seed)
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": 3,
        "dtype": "uint8",
        "crs": CRS,
        "transform": from_origin(*ORIGIN, PIXEL_SIZE, PIXEL_SIZE),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "photometric": "RGB",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(scene.image)
        dst.update_tags(classes=",".join(CLASSES), seed=str(seed))
    return scene
