"""A finished tilerun output opened for export: its frame, classes and chunk-wise reads.

Exports never load a whole variable: they ask :class:`FinishedOutput` for one window at a time
(:meth:`FinishedOutput.read`, :meth:`FinishedOutput.labels`), and iterate windows aligned to
the store's chunks so each stored chunk is decoded once (or a few times when the caller's
block grid does not match the chunks).

The *frame* (an :class:`affine.Affine`, as rasterio's transforms) maps output pixel corners
``(col, row)`` to coordinates: ``x = a·col + b·row + c``, ``y = d·col + e·row + f``.

* A georeferenced raster's frame is the ``GeoTransform`` of ``spatial_ref`` (with its
  ``crs_wkt``), exactly what rioxarray reads back.
* A slide has no CRS; its frame is the record's ``slide.level0_affine``, so coordinates are
  level-0 pixel corners of the slide (x right, y down), which is what QuPath and OpenSlide use.
* A plain array has the identity frame and no CRS.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from tilerun.classes.colours import hex_colour, palette_colour
from tilerun.errors import InputError
from tilerun.geometry import Window
from tilerun.sinks.layout import store as output_stores
from tilerun.sinks.objects import object_url

IDENTITY = Affine.identity()
#: the variables an export can read, in the order ``--variable`` lists them
EXPORTABLE = ("labels", "probabilities", "logits")


@dataclass(frozen=True)
class FinishedOutput:
    """A complete tilerun output store, read lazily (see the module docstring)."""

    #: the store: a path, or an object-store URL
    path: str | Path
    group: Any
    record: dict[str, Any]
    height: int
    width: int
    #: chunk edge (rows, columns) of the spatial axes
    chunks: tuple[int, int]
    crs_wkt: str | None
    frame: Affine
    #: names of the label values 0 … n-1 (a one-class model has two: ``not X`` and ``X``)
    class_names: tuple[str, ...]
    #: ``#rrggbb`` per label value
    class_colours: tuple[str, ...]

    @property
    def slide(self) -> dict[str, Any] | None:
        """The slide metadata the run recorded, None for rasters and arrays."""
        slide = self.record.get("slide")
        return slide if isinstance(slide, dict) else None

    @property
    def is_slide(self) -> bool:
        return self.slide is not None

    @property
    def pixel_area(self) -> float:
        """Area of one output pixel in frame units² (``|a·e − b·d|``)."""
        return abs(self.frame.determinant)

    def has(self, variable: str) -> bool:
        return variable in set(self.group.array_keys())

    def windows(self, step: tuple[int, int] | None = None) -> Iterator[Window]:
        """Row-major windows of ``step`` (default: the chunks) covering the raster."""
        sy, sx = step or self.chunks
        for y in range(0, self.height, sy):
            for x in range(0, self.width, sx):
                yield Window(y, x, min(sy, self.height - y), min(sx, self.width - x))

    def read(self, variable: str, window: Window) -> np.ndarray:
        """The stored values (raw codes for probabilities) of ``variable`` in ``window``."""
        array = self.group[variable]
        rows, cols = window.slices()
        if array.ndim == 3:
            return np.asarray(array[:, rows, cols])
        return np.asarray(array[rows, cols])

    def labels(self, window: Window) -> np.ndarray:
        """uint8 labels in ``window``, :data:`~tilerun.sinks.layout.codes.LABEL_FILL` where nodata:
        the ``labels`` variable, else the argmax of the logits (``logit > 0`` for one class),
        else of the probability codes (``p > 0.5`` for one class), as the run labelled."""
        return output_stores.read_labels(self.group, *window.slices())


def open_finished(store: str | Path) -> FinishedOutput:
    """Open a *complete* tilerun output; a one-line :class:`InputError` for anything else: no
    store, an unfinished run (``OUT.zarr.partial`` or ``complete`` not set), a store tilerun
    did not write, or one without labels or logits."""
    path = store if object_url(store) else Path(store)
    group, record = output_stores.open_finished(store)
    arrays = set(group.array_keys())
    present = [name for name in EXPORTABLE if name in arrays]
    if not present:
        raise InputError(path, "has neither labels, probabilities nor logits to export")
    spatial: Any = group[present[0]]
    height, width = (int(n) for n in spatial.shape[-2:])
    chunks = (int(spatial.chunks[-2]), int(spatial.chunks[-1]))
    crs_wkt, frame = _frame(group, record, path)
    names = output_stores.class_names(group, record)
    return FinishedOutput(path, group, record, height, width, chunks, crs_wkt, frame, names,
                          _colours(record, len(names)))


def _frame(group: Any, record: dict[str, Any], path: str | Path) -> tuple[str | None, Affine]:
    slide = record.get("slide")
    if isinstance(slide, dict):
        return None, _affine(slide.get("level0_affine"), path, "slide.level0_affine")
    if "spatial_ref" not in set(group.array_keys()):
        return None, IDENTITY
    attrs = group["spatial_ref"].attrs
    wkt = attrs.get("crs_wkt") or attrs.get("spatial_ref")
    text = attrs.get("GeoTransform")
    if text is None:
        return (str(wkt) if wkt else None), IDENTITY
    try:
        c, a, b, f, d, e = (float(v) for v in str(text).split())
    except ValueError as err:
        raise InputError(path, f"spatial_ref GeoTransform {text!r} is not 6 numbers") from err
    return (str(wkt) if wkt else None), _affine([a, b, c, d, e, f], path, "GeoTransform")


def _affine(values: Any, path: str | Path, what: str) -> Affine:
    try:
        a, b, c, d, e, f = (float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise InputError(path, f"{what} is not 6 numbers ({values!r})") from err
    if not all(math.isfinite(v) for v in (a, b, c, d, e, f)) or a * e - b * d == 0:
        raise InputError(path, f"{what} {values!r} is not an invertible affine")
    return Affine(a, b, c, d, e, f)


def _colours(record: dict[str, Any], values: int) -> tuple[str, ...]:
    """``#rrggbb`` per label value: the record's ``class_colours``, else the quicklook
    palette (as ``tilerun quicklook`` colours them)."""
    from tilerun.errors import OptionError

    stored = record.get("class_colours")
    colours = list(stored) if isinstance(stored, list | tuple) else []
    out = []
    for k in range(values):
        try:
            out.append(hex_colour(colours[k]) if k < len(colours) else palette_colour(k))
        except (OptionError, TypeError):
            out.append(palette_colour(k))
    return tuple(out)
