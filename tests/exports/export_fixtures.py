"""Small tilerun outputs whose labels the tests choose, for the export tests.

An identity model over a one-hot float image reproduces the chosen labels exactly (argmax of
the one-hot logits), so every export can be checked against known pixels:

* :func:`write_output`: a georeferenced raster output (GeoTIFF in, UTM 33N, 10 m pixels);
* :func:`write_slide_output`: a slide output predicted at pyramid level 1 (downsample 2);
* :func:`memory_output`: labels in an in-memory Zarr group, for the polygon tracer alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

CLASS_NAMES = ("water", "forest", "field")
CLASS_COLOURS = ("#1f4e9c", "#2e7d32", "#f9a825")
ORIGIN = (500000.0, 6000000.0)
PIXEL = 10.0
NODATA = 255


class Identity(nn.Module):
    """Logits = input (one class per band)."""

    downsampling = 1

    def forward(self, x: Any) -> Any:
        return x


def handle(classes: int = 3) -> Any:
    from tilerun.models import ModelSpec, as_model

    spec = ModelSpec(class_names=CLASS_NAMES[:classes], class_colours=CLASS_COLOURS[:classes])
    return as_model(Identity(), spec=spec)


def _run(source: Any, out: Path, chunk: int, output: tuple[str, ...], **options: Any) -> Path:
    import tilerun

    tilerun.run(source, handle(), out, tilerun.PredictOptions(
        tile=32, chunk=chunk, output=output, blend="constant", backend="torch",
        batch_size=8, **options,
    ))  # fmt: skip
    return out


def one_hot(labels: np.ndarray, classes: int = 3, nodata: float = -9999.0) -> np.ndarray:
    image = np.stack([(labels == k).astype(np.float32) for k in range(classes)])
    image[:, labels == NODATA] = nodata
    return image


def write_output(
    root: Path, labels: np.ndarray, *, chunk: int = 32, name: str = "out.zarr",
    output: tuple[str, ...] = ("labels",), crs: str | None = "EPSG:32633",
) -> Path:
    """A raster output whose labels are ``labels`` (255: nodata)."""
    import rasterio
    from affine import Affine

    height, width = labels.shape
    tif = root / f"{name}.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=width, height=height, count=3,
                       dtype="float32", crs=crs, nodata=-9999.0,
                       transform=Affine(PIXEL, 0.0, ORIGIN[0], 0.0, -PIXEL, ORIGIN[1])) as dst:
        dst.write(one_hot(labels))
    return _run(tif, root / name, chunk, output)


def write_array_output(root: Path, labels: np.ndarray, name: str = "array.zarr") -> Path:
    """An output of a plain numpy array: no CRS, identity frame."""
    return _run(one_hot(labels, nodata=np.nan), root / name, 32, ("labels",))


def slide_image(height: int = 192, width: int = 256) -> np.ndarray:
    """RGB: blue background, a red and a green rectangle on even level-0 coordinates (so the
    level-1 halving keeps them sharp). Channel order = class order: red 0, green 1, blue 2."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 2] = 200
    image[40:100, 60:140] = (220, 0, 0)
    image[120:160, 20:240] = (0, 210, 0)
    return image


def write_slide_output(root: Path, level: int = 1, chunk: int = 32) -> Path:
    """A slide output predicted at ``level`` of a two-level synthetic pyramid."""
    from tilerun.sample import write_pyramid

    slide = root / "slide.tif"
    write_pyramid(slide, slide_image(), levels=2, mpp=0.5, tile=64)
    return _run(slide, root / "slide.zarr", chunk, ("labels",), level=level, tissue="none")


def memory_output(labels: np.ndarray, chunks: tuple[int, int]) -> Any:
    """A :class:`FinishedOutput` over labels held in an in-memory Zarr group."""
    import zarr

    from tilerun.exports.reader import IDENTITY, FinishedOutput

    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    array = group.create_array("labels", shape=labels.shape, chunks=chunks, dtype="uint8")
    array[...] = labels
    height, width = labels.shape
    names = tuple(f"class {k}" for k in range(int(labels[labels != NODATA].max(initial=0)) + 1))
    return FinishedOutput(Path("memory.zarr"), group, {}, height, width, chunks, None, IDENTITY,
                          names, tuple("#000000" for _ in names))


def blobs(height: int, width: int, seed: int, classes: int = 3) -> np.ndarray:
    """Smooth random class blobs (regions of many sizes, holes, seam crossings)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes, size=(height // 6 + 2, width // 6 + 2))
    labels = np.repeat(np.repeat(coarse, 6, axis=0), 6, axis=1)[:height, :width]
    noise = rng.random((height, width)) < 0.08
    labels = np.where(noise, rng.integers(0, classes, size=(height, width)), labels)
    return labels.astype(np.uint8)
