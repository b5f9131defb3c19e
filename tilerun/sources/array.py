"""In-memory and lazy arrays as sources: numpy, dask, and xarray DataArrays (with rioxarray georef).

Arrays are ``(bands, y, x)`` or ``(y, x)``. Validity: finite and not equal to ``nodata``.
A dask array is sliced lazily per window and computed with the synchronous scheduler inside the
calling task, so it never runs a second scheduler inside tilerun's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

from tilerun.errors import InputError
from tilerun.geometry import GeoRef, Window
from tilerun.sources.bandnames import band_labels
from tilerun.sources.bands import BandSpec, bands_for_model, select_bands
from tilerun.sources.base import ScaleOffset, Source


class ArraySource(Source):
    """A numpy or dask array, optionally with georeferencing and a nodata value."""

    def __init__(
        self,
        array: np.ndarray | da.Array,
        *,
        bands: BandSpec | None = None,
        nodata: float | None = None,
        georef: GeoRef | None = None,
        name: str = "<array>",
        labels: Sequence[Sequence[str]] = (),
        scale_offset: ScaleOffset | None = None,
    ) -> None:
        """``labels``: each band's names (for ``bands`` by name); ``scale_offset``: what
        turns the values into physical ones (the run applies it, see ``ModelSpec``)."""
        self.name = name
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise InputError(name, f"expected (bands, y, x) or (y, x), got shape {array.shape}")
        chosen = select_bands(name, array.shape[0], bands, labels)
        self._array = array[[b - 1 for b in chosen]] if bands is not None else array
        self._labels = tuple(tuple(labels[b - 1]) for b in chosen) if labels else ()
        self._scale_offset = None if scale_offset is None else ScaleOffset(
            tuple(scale_offset.scales[b - 1] for b in chosen),
            tuple(scale_offset.offsets[b - 1] for b in chosen), scale_offset.origin)
        self._nodata = nodata
        self._georef = georef
        self.check_dtype()

    @classmethod
    def from_xarray(cls, data: Any, bands: BandSpec | None = None,
                    model_bands: Sequence[str] | None = None) -> ArraySource:
        """A DataArray with dims ``(band, y, x)`` or ``(y, x)``; georef read through rioxarray;
        band names from a string band coordinate or ``long_name``, and rioxarray's
        ``scale_factor``/``add_offset`` attributes (left there when not decoded)."""
        import rioxarray  # noqa: F401  (registers the .rio accessor)

        name = f"<DataArray {data.name or ''}>".replace(" >", ">")
        spatial = {"y", "x"} <= set(data.dims)
        if spatial and data.ndim == 3:
            (band_dim,) = [d for d in data.dims if d not in ("y", "x")]
            data = data.transpose(band_dim, "y", "x")
        georef, nodata = None, None
        labels, scaling = _xarray_bands(data)
        if bands is None:
            bands = bands_for_model(name, labels, model_bands)
        if spatial:
            crs = data.rio.crs
            georef = GeoRef(crs.to_wkt() if crs else None, tuple(data.rio.transform())[:6])
            nodata = data.rio.nodata
        return cls(data.data, bands=bands, nodata=nodata, georef=georef, name=name,
                   labels=labels, scale_offset=scaling)

    @property
    def shape(self) -> tuple[int, int, int]:
        b, h, w = self._array.shape
        return int(b), int(h), int(w)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self._array.dtype)

    @property
    def georef(self) -> GeoRef | None:
        return self._georef

    @property
    def nodata(self) -> float | None:
        return self._nodata

    def in_memory(self) -> np.ndarray | None:
        return self._array if isinstance(self._array, np.ndarray) else None

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        block = self._array[:, window.y : window.bottom, window.x : window.right]
        if isinstance(block, da.Array):
            block = block.compute(scheduler="sync")
        pixels = np.asarray(block)
        valid = np.ones(pixels.shape, dtype=bool)
        if pixels.dtype.kind == "f":
            valid &= np.isfinite(pixels)
        if self._nodata is not None and not np.isnan(self._nodata):
            valid &= pixels != self._nodata
        return pixels, valid


def _xarray_bands(data: Any) -> tuple[list[tuple[str, ...]], ScaleOffset | None]:
    """Band names and scale/offset of a ``(band, y, x)`` DataArray, as rioxarray and STAC
    stackers leave them: string band coordinates, ``long_name``, ``scale_factor``/``add_offset``."""
    count = data.shape[0] if data.ndim == 3 else 1
    names: list[list[str | None]] = [[] for _ in range(count)]
    if data.ndim == 3 and data.dims[0] in data.coords:
        for k, value in enumerate(data.coords[data.dims[0]].values.tolist()):
            names[k].append(value if isinstance(value, str) else None)
    long_name = data.attrs.get("long_name")
    if isinstance(long_name, (list, tuple)) and len(long_name) == count:
        for k, value in enumerate(long_name):
            names[k].append(str(value))
    labels = [band_labels(*n) for n in names]
    scale, offset = data.attrs.get("scale_factor"), data.attrs.get("add_offset")
    scaling = ScaleOffset.of([_scalar(scale, k) for k in range(count)],
                             [_scalar(offset, k) for k in range(count)], "xarray attributes")
    return (labels if any(labels) else []), scaling


def _scalar(value: Any, band: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return float(value[band]) if len(value) > band else None
    return float(value)
