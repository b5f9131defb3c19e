"""Viewer-ready multiscale pyramids (OME-NGFF / OME-Zarr 0.5) inside a finished tilerun store.

napari (with napari-ome-zarr), Viewer/vizarr, Neuroglancer and other NGFF viewers open a group
of ``multiscales`` metadata at any zoom without reading the full-resolution array. After a run,
:func:`write_label_pyramid` and :func:`write_probability_pyramid` add such groups next to the
store's ``labels`` and ``logits``; the store stays a valid xarray/CF store.

Layout (Zarr v3, OME-Zarr 0.5: the metadata sits under the group attribute ``"ome"`` with
``"version": "0.5"``)::

    out.zarr/
      labels, logits, …            the run's variables (unchanged)
      labels_pyramid/              attrs: ome.multiscales (+ ome.image-label)
        0  1  2 …                  (y, x) uint8, level 0 = a chunk-by-chunk copy of labels
      probabilities/               attrs: ome.multiscales (+ ome.omero channel names)
        0  1  2 …                  (c, y, x) softmax probabilities, float32 or float16

Level ``k`` has shape ``ceil(shape_{k-1} / 2)`` and the coordinate transformations (NGFF
``scale`` then ``translation``, per axis, ``p`` the level-0 pixel size, 1 when not given)::

    scale_k       = p * 2**k
    translation_k = p * (2**k - 1) / 2

so the centre of level-``k`` pixel ``i`` sits at the centre of the ``2**k`` level-0 pixels it
summarises and every level spans the same extent.

Downsampling:

* **labels: nearest by stride-2 subsampling**, ``level_k = level_{k-1}[::2, ::2]``, hence
  exactly ``labels[::2**k, ::2**k]``. Labels are categories: averaging would invent classes
  between two others (the mean of 1 and 3 is 2), and a nodata fill (255) would bleed into
  them. A 2×2 *mode* would keep thin classes a little better but needs tie rules (two-two
  splits are common), is not exactly a subsample of level 0, and costs more; stride sampling
  is what viewers expect. Its price: the value at level ``k`` comes from the top-left pixel of
  its block, up to ``(2**k - 1) / 2`` level-0 pixels (under half a level-``k`` pixel) from the
  block centre the transform puts it at.
* **probabilities: 2×2 mean**, computed in float32 from the stored previous level (so level
  ``k`` is exactly the rounded mean of level ``k-1`` as stored). A mean of probabilities is a
  probability (each pixel still sums to 1). NaN (nodata) pixels are left out of the mean; a
  block of only NaN stays NaN; blocks at an odd far edge average the pixels they have.
  Probabilities are ``softmax(logits)`` over classes; a one-class (binary) model's logit
  ``z`` becomes two channels ``(1 - sigmoid(z), sigmoid(z))``, matching the labels.

Everything is computed chunk by chunk with Dask from the stored arrays (never loading a whole
array); each level is written, then read back for the next. The group is written under
``<name>.partial`` and renamed into place when complete, and the store's consolidated
metadata, when it has some, is rebuilt so that it lists the new group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from tilerun.classes.colours import Colour, hex_colour, palette_colour
from tilerun.classes.probabilities import probabilities, two_class
from tilerun.errors import OptionError
from tilerun.sinks.pyramids.metadata import (
    NGFF_VERSION,
    channel_names,
    ngff_axes,
    ngff_image_label,
    ngff_multiscale,
    ngff_transforms,
    nodata_value,
)
from tilerun.sinks.pyramids.request import PyramidRequest
from tilerun.sinks.pyramids.stores import Pyramid, Store, open_store

PROBABILITY_DTYPES = ("float32", "float16")


def level_count(height: int, width: int, min_size: int = 256) -> int:
    """Levels needed until the long edge is at most ``min_size`` (halving with ceil)."""
    if min_size < 1:
        raise OptionError("min_size", f"must be at least 1, got {min_size}")
    n = 1
    while max(height, width) > min_size:
        height, width = -(-height // 2), -(-width // 2)
        n += 1
    return n


def level_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """``(height, width)`` of each level: level ``k`` is ``ceil(level_{k-1} / 2)``."""
    shapes = [(height, width)]
    for _ in range(levels - 1):
        h, w = shapes[-1]
        shapes.append((-(-h // 2), -(-w // 2)))
    return shapes


def write_pyramids(store: Store, request: PyramidRequest) -> list[Pyramid]:
    """Add the pyramids of ``request`` to ``store``: what a sink calls on its own store while
    it finishes it (before its ``complete`` flag, so the store is not required complete)."""
    written = []
    if "labels" in request.kinds:
        written.append(write_label_pyramid(store, pixel_size=request.pixel_size,
                                           unit=request.unit))
    if "probabilities" in request.kinds:
        written.append(write_probability_pyramid(store, name=request.probabilities_name,
                                                 pixel_size=request.pixel_size,
                                                 unit=request.unit))
    return written


def _store(store_path: str | Path | Store, require_complete: bool) -> Store:
    """The store a sink handed over, or the one at a path or URL."""
    if isinstance(store_path, Store):
        return store_path
    return open_store(store_path, require_complete)


def write_label_pyramid(
    store_path: str | Path | Store,
    *,
    levels: int | None = None,
    source_variable: str = "labels",
    name: str = "labels_pyramid",
    min_size: int = 256,
    pixel_size: tuple[float, float] | None = None,
    unit: str | None = None,
    colors: Sequence[Colour] | None = None,
    source_image: str | None = None,
    overwrite: bool = False,
    require_complete: bool = True,
) -> Pyramid:
    """Add an OME-NGFF label pyramid of ``source_variable`` (``(y, x)`` labels) to a store.

    ``levels`` defaults to :func:`level_count` (``min_size``). ``pixel_size`` ``(sy, sx)`` and
    ``unit`` (``"micrometer"`` for slides, ``"meter"`` for projected rasters; spellings such as
    ``"metre"`` or ``"um"`` are mapped to NGFF's names) go into the transforms; without them
    the scale is in pixels and the axes carry no unit.

    The group gets NGFF ``image-label`` metadata: ``colors`` (``#rrggbb``, ``#rrggbbaa`` or
    RGB(A) integer sequences, one per label value from 0; default: ``class_colours`` in the
    store's ``tilerun`` attributes, if any), the nodata fill value as transparent, class names
    as ``properties`` (from the labels' CF ``flag_meanings``) and ``source`` (``{"image":
    source_image}``, a path relative to the label group) when given.

    ``store_path`` is a folder or an object-store URL (the store must be finished, unless
    ``require_complete=False``), or a :class:`~tilerun.sinks.pyramids.stores.Store` a sink
    hands over while it finishes its store (it flags it complete after its pyramids).
    """
    store = _store(store_path, require_complete)
    source = store.source_array(source_variable, ndim=2)
    height, width = (int(n) for n in source.shape)
    n_levels = _levels(levels, height, width, min_size)
    chunk = _spatial_chunk(source)
    shapes = level_shapes(height, width, n_levels)
    scales, translations = ngff_transforms(n_levels, pixel_size)
    ome: dict[str, Any] = {
        "version": NGFF_VERSION,
        "multiscales": [
            ngff_multiscale(
                name, ngff_axes(("y", "x"), unit), scales, translations, method="nearest",
                description="stride-2 subsampling: level k = level k-1 [::2, ::2]",
            )
        ],
        "image-label": ngff_image_label(store.group, source, colors, source_image),
    }  # fmt: skip

    def level(k: int, previous: da.Array | None) -> da.Array:
        if previous is None:
            return da.from_zarr(source)
        return previous[::2, ::2]

    with store.writing(name, overwrite) as group:
        _write_levels(
            group, shapes, level, dims=("y", "x"), dtype=np.dtype(source.dtype),
            chunks=(chunk, chunk), fill_value=nodata_value(source),
            compressors=_compressors(source),
        )  # fmt: skip
        group.attrs["ome"] = ome
    return _written(store, name, shapes, scales, translations, str(np.dtype(source.dtype)),
                    "nearest")


def write_probability_pyramid(
    store_path: str | Path | Store,
    *,
    levels: int | None = None,
    source_variable: str = "logits",
    name: str = "probabilities",
    min_size: int = 256,
    pixel_size: tuple[float, float] | None = None,
    unit: str | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
    require_complete: bool = True,
) -> Pyramid:
    """Add an OME-NGFF pyramid of class probabilities ``(c, y, x)`` from ``(class, y, x)`` logits.

    Level 0 is ``softmax(logits)`` over classes (two channels ``1 - σ, σ`` for a one-class
    model); each next level the 2×2 mean of the previous (see the module docstring). ``dtype``
    is ``"float32"`` (default) or ``"float16"`` (half the size; values within about 1e-3).
    Other arguments as in :func:`write_label_pyramid`; class names become ``omero`` channel
    labels so viewers name the channels.
    """
    if dtype not in PROBABILITY_DTYPES:
        raise OptionError("dtype", f"choose from {PROBABILITY_DTYPES}, got {dtype!r}")
    store = _store(store_path, require_complete)
    source = store.source_array(source_variable, ndim=3)
    classes, height, width = (int(n) for n in source.shape)
    channels = 2 if classes == 1 else classes
    n_levels = _levels(levels, height, width, min_size)
    chunk = _spatial_chunk(source)
    shapes = [(channels, h, w) for h, w in level_shapes(height, width, n_levels)]
    scales, translations = ngff_transforms(n_levels, pixel_size, leading=1)
    names = channel_names(store.group, source, channels)
    ome: dict[str, Any] = {
        "version": NGFF_VERSION,
        "multiscales": [
            ngff_multiscale(
                name, ngff_axes(("c", "y", "x"), unit), scales, translations, method="mean",
                description="2x2 mean of the previous level, NaN (nodata) left out",
            )
        ],
        "omero": {
            "channels": [
                {
                    "label": label,
                    "color": hex_colour(palette_colour(i)).removeprefix("#").upper(),
                    "window": {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0},
                    "active": True,
                }
                for i, label in enumerate(names)
            ],
            "rdefs": {"model": "color"},
        },
    }  # fmt: skip

    def level(k: int, previous: da.Array | None) -> da.Array:
        if previous is None:
            logits = da.from_zarr(source).rechunk({0: -1})
            out_chunks = ((channels,), *logits.chunks[1:])
            return da.map_blocks(_softmax, logits, dtype=np.float32, chunks=out_chunks)
        return mean_pool_2x2(previous)

    with store.writing(name, overwrite) as group:
        _write_levels(
            group, shapes, level, dims=("c", "y", "x"), dtype=np.dtype(dtype),
            chunks=(channels, chunk, chunk), fill_value=np.nan, compressors="auto",
        )  # fmt: skip
        group.attrs["ome"] = ome
    return _written(store, name, shapes, scales, translations, dtype, "mean")


def _written(store: Store, name: str, shapes: Sequence[tuple[int, ...]],
             scales: list[list[float]], translations: list[list[float]], dtype: str,
             method: str) -> Pyramid:
    return Pyramid(
        path=store.child(name),
        name=name,
        shapes=tuple(tuple(int(n) for n in s) for s in shapes),
        scales=tuple(tuple(s) for s in scales),
        translations=tuple(tuple(t) for t in translations),
        dtype=dtype,
        method=method,
    )


# --- downsampling --------------------------------------------------------------------------


def mean_pool_2x2(array: da.Array) -> da.Array:
    """2×2 mean over the last two axes, NaN left out, ceil at odd edges; chunk by chunk.

    Every chunk but the last along y and x is made even first (a rechunk only when needed),
    so no 2×2 block straddles two chunks; the result is float32.
    """
    chunks = list(array.chunks)
    for axis in (-2, -1):
        sizes = chunks[axis]
        if any(c % 2 for c in sizes[:-1]):
            step = sizes[0] + sizes[0] % 2
            total = sum(sizes)
            chunks[axis] = (step,) * (total // step) + ((total % step,) if total % step else ())
    if tuple(chunks) != array.chunks:
        array = array.rechunk(tuple(chunks))
    out_chunks = (*array.chunks[:-2], *(tuple(-(-c // 2) for c in cs) for cs in array.chunks[-2:]))
    return da.map_blocks(_mean2, array, dtype=np.float32, chunks=out_chunks)


def _mean2(block: np.ndarray) -> np.ndarray:
    b = np.asarray(block, dtype=np.float32)
    h, w = b.shape[-2:]
    pad = [(0, 0)] * (b.ndim - 2) + [(0, h % 2), (0, w % 2)]
    b = np.pad(b, pad, constant_values=np.nan)
    b = b.reshape(*b.shape[:-2], b.shape[-2] // 2, 2, b.shape[-1] // 2, 2)
    valid = ~np.isnan(b)
    total = np.where(valid, b, 0).sum(axis=(-3, -1), dtype=np.float32)
    count = valid.sum(axis=(-3, -1))
    out = np.full(total.shape, np.nan, np.float32)
    np.divide(total, count, out=out, where=count > 0)
    return out


def _softmax(block: np.ndarray) -> np.ndarray:
    z = np.asarray(block, dtype=np.float32)
    return two_class(z) if z.shape[0] == 1 else probabilities(z)  # binary: 1 - σ(z), σ(z)


def _write_levels(
    group: Any,
    shapes: Sequence[tuple[int, ...]],
    level: Callable[[int, da.Array | None], da.Array],
    *,
    dims: tuple[str, ...],
    dtype: np.dtype[Any],
    chunks: tuple[int, ...],
    fill_value: Any,
    compressors: Any,
) -> None:
    """Create arrays ``0 … n-1`` and fill each from the one before, chunk by chunk."""
    previous: da.Array | None = None
    for k, shape in enumerate(shapes):
        level_chunks = tuple(min(c, n) for c, n in zip(chunks, shape, strict=True))
        target = group.create_array(
            str(k), shape=shape, dtype=dtype, chunks=level_chunks, fill_value=fill_value,
            dimension_names=dims, compressors=compressors,
        )  # fmt: skip
        data = level(k, previous)
        if tuple(data.shape) != tuple(shape):  # pragma: no cover - a bug, not a user error
            raise AssertionError(f"level {k}: computed {data.shape}, expected {shape}")
        data = data.astype(dtype).rechunk(level_chunks)
        da.store(data, target, lock=False)
        previous = da.from_zarr(target)


def _spatial_chunk(array: Any) -> int:
    return int(max(array.chunks[-2:]))


def _compressors(array: Any) -> Any:
    compressors = getattr(array, "compressors", None)
    return compressors if compressors else "auto"


def _levels(levels: int | None, height: int, width: int, min_size: int) -> int:
    if levels is None:
        return level_count(height, width, min_size)
    if levels < 1:
        raise OptionError("levels", f"must be at least 1, got {levels}")
    return int(levels)
