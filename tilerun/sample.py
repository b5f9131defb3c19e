"""Synthetic, georeferenced land-cover scenes whose ground truth is known.

Classes (:data:`CLASSES`): water, forest, field, built-up. The class map is drawn from smoothed
random fields (so regions have natural, blobby boundaries); each class gets its own colour and
texture (still water, canopy speckle, striped fields, a grid of roofs and streets). Deterministic
for a given seed: tests and training scripts regenerate scenes instead of storing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def make_slide_image(size: int = 2048, tissue_fraction: float = 0.3, seed: int = 0) -> Scene:
    """An H&E-like RGB image: pink/purple tissue blobs on near-white glass.

    The tissue is where a smooth random field exceeds its ``1 - tissue_fraction`` quantile, so
    the true tissue fraction is ``tissue_fraction`` (to within a pixel's rounding). ``truth`` is
    1 on tissue, 0 on glass.
    """
    rng = np.random.default_rng(seed)
    field = _smooth_field(rng, size, size, max(size // 8, 16))
    truth = (field > np.quantile(field, 1.0 - tissue_fraction)).astype(np.uint8)
    nuclei = _smooth_field(rng, size, size, 3) > 1.0
    glass = np.array([242, 240, 244], np.float32)[:, None, None]
    stroma = np.array([222, 150, 190], np.float32)[:, None, None]
    nucleus = np.array([110, 60, 150], np.float32)[:, None, None]
    tissue = np.where(nuclei[None], nucleus, stroma)
    image = np.where(truth[None].astype(bool), tissue, glass)
    image = image + rng.normal(scale=4.0, size=image.shape)
    return Scene(np.clip(image, 0, 255).astype(np.uint8), truth)


def write_slide(
    path: str | Path,
    size: int = 2048,
    tissue_fraction: float = 0.3,
    seed: int = 0,
    mpp: float | None = 0.5,
    levels: int = 4,
) -> Scene:
    """Write :func:`make_slide_image` as a tiled pyramidal TIFF (:func:`write_pyramid`)."""
    scene = make_slide_image(size, tissue_fraction, seed)
    write_pyramid(path, scene.image.transpose(1, 2, 0), levels=levels, mpp=mpp)
    return scene


def halve(image: np.ndarray) -> np.ndarray:
    """2×2 box mean of an ``(h, w, c)`` uint8 image (odd last row/column dropped), rounded."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    blocks = image[: 2 * h, : 2 * w].reshape(h, 2, w, 2, image.shape[2]).astype(np.float64)
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)


def write_pyramid(
    path: str | Path,
    image: np.ndarray,
    *,
    levels: int = 4,
    mpp: float | None = 0.5,
    tile: int = 256,
) -> Path:
    """Write ``(h, w, 3)`` RGB or ``(h, w, 4)`` RGBA uint8 as a pyramid of ``levels`` levels,
    each the :func:`halve` of the previous (see :func:`write_levels`)."""
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(halve(pyramid[-1]))
    return write_levels(path, pyramid, mpp=mpp, tile=tile)


def write_levels(
    path: str | Path, levels: list[np.ndarray], *, mpp: float | None = 0.5, tile: int = 256
) -> Path:
    """Write level images (largest first) as a TIFF that OpenSlide opens as ``generic-tiff``.

    OpenSlide wants each level as a successive tiled top-level directory and takes the sizes as
    they are: ``downsample = (w0/w + h0/h) / 2``. ``mpp`` (µm at level 0) is stored as
    X/YResolution per centimetre, which it reports as ``openslide.mpp-x``/``-y`` (None: no mpp
    metadata). An alpha channel is stored unassociated.
    """
    import tifffile

    with tifffile.TiffWriter(path) as tif:
        for i, level in enumerate(levels):
            options: dict[str, Any] = {
                "tile": (tile, tile), "photometric": "rgb", "compression": "zlib",
            }
            if level.shape[2] == 4:
                options["extrasamples"] = ["unassalpha"]
            if i:
                options["subfiletype"] = 1  # reduced-resolution image
            if mpp is not None:
                per_cm = 1e4 / (mpp * levels[0].shape[1] / level.shape[1])
                options["resolution"] = (per_cm, per_cm)
                options["resolutionunit"] = "CENTIMETER"
            tif.write(np.ascontiguousarray(level), **options)
    return Path(path)
