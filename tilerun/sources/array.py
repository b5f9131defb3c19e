"""In-memory and lazy arrays as sources: numpy, dask, and xarray DataArrays (with rioxarray georef).

Arrays are ``(bands, y, x)`` or ``(y, x)``. Validity: finite and not equal to ``nodata``.
A dask array is sliced lazily per window and computed with the synchronous scheduler inside the
calling task, so it never runs a second scheduler inside tilerun's own.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from tilerun.errors import InputError
from tilerun.geometry import Window
from tilerun.sources.bands import BandSpec, select_bands
from tilerun.sources.base import GeoRef, Source


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
    ) -> None:
        self.name = name
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise InputError(name, f"expected (bands, y, x) or (y, x), got shape {array.shape}")
        chosen = select_bands(name, array.shape[0], bands)
        self._array = array[[b - 1 for b in chosen]] if bands is not None else array
        self._nodata = nodata
        self._georef = georef
        self.check_dtype()

    @classmethod
    def from_xarray(cls, data: Any, bands: BandSpec | None = None) -> ArraySource:
        """A DataArray with dims ``(band, y, x)`` or ``(y, x)``; georef read through rioxarray."""
        import rioxarray  # noqa: F401  (registers the .rio accessor)

        name = f"<DataArray {data.name or ''}>".replace(" >", ">")
        spatial = {"y", "x"} <= set(data.dims)
        if spatial and data.ndim == 3:
            (band_dim,) = [d for d in data.dims if d not in ("y", "x")]
            data = data.transpose(band_dim, "y", "x")
        georef, nodata = None, None
        if spatial:
            crs = data.rio.crs
            georef = GeoRef(crs.to_wkt() if crs else None, tuple(data.rio.transform())[:6])
            nodata = data.rio.nodata
        return cls(data.data, bands=bands, nodata=nodata, georef=georef, name=name)

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
