"""Several single-band rasters of one scene as one source, on the grid of the finest of them.

Sentinel-2 ships one file per band, at 10 m and 20 m; a STAC item lists them as assets. A
:class:`StackSource` reads each band from its own file (each a :class:`GeoTIFFSource`, so
local guards, URLs and error lines are the same as for one file) and puts them on one grid:
that of the band with the smallest pixel, the first such one in order. A band on that very
grid is read as it is; any other (coarser, shifted, or in another CRS) is resampled window by
window through a GDAL warped VRT (:class:`rasterio.vrt.WarpedVRT`), with the method chosen
(:data:`RESAMPLING`, nearest by default: it invents no values and suits class layers). Nearest
on an axis-aligned grid in the same CRS (Sentinel-2's 20 m bands under its 10 m ones) skips
the warper: the pixels under the window are read once and gathered (several times faster,
the same pixels). Nothing is resampled ahead: a window reads only the source pixels under it.

Each band keeps its own scale/offset and nodata; a catalogue (STAC ``raster:bands``) may give
them where the file does not (:class:`BandFile`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window as RioWindow

from tilerun.errors import BandError, InputError, OptionError
from tilerun.geometry import GeoRef, Window
from tilerun.sources.bandnames import band_labels
from tilerun.sources.bands import BandSpec, bands_for_model, select_bands
from tilerun.sources.base import PerThreadHandles, ScaleOffset, Source
from tilerun.sources.geotiff import GeoTIFFSource

#: Resampling methods for bands not on the stack's grid (GDAL's names).
RESAMPLING = ("nearest", "bilinear", "cubic", "average", "mode")


@dataclass(frozen=True)
class BandFile:
    """One band of a stack: a raster (path or URL), the 1-based band in it, and what a
    catalogue says of it; None leaves the file's own value (scale, offset, nodata)."""

    href: str
    band: int = 1
    labels: tuple[str, ...] = ()
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None
    #: where the catalogue (STAC ``proj:``) places the file; used when the file itself has
    #: no CRS (its own georeferencing wins otherwise)
    georef: GeoRef | None = None


def check_resampling(method: str) -> str:
    if method not in RESAMPLING:
        raise OptionError("--resampling", f"choose from {RESAMPLING}, got {method!r}")
    return method


class StackSource(PerThreadHandles, Source):
    """Single bands from several rasters, stacked on the finest grid (see the module doc)."""

    def __init__(self, files: Sequence[BandFile], *, name: str | None = None,
                 bands: BandSpec | None = None, model_bands: Sequence[str] | None = None,
                 resampling: str = "nearest") -> None:
        """``bands``: numbers (1-based, over ``files``) and/or names; None: those the model
        names (``model_bands``) when the files are named, else all files in order."""
        if not files:
            raise InputError(name or "stack", "no band files to stack")
        self.name = name or f"{files[0].href} (+{len(files) - 1} band files)"
        self.resampling = check_resampling(resampling)
        members = [GeoTIFFSource(f.href, bands=[f.band]) for f in files]
        labels = [band_labels(*f.labels, *m.band_labels[0], _stem(m, f)) for f, m in
                  zip(files, members, strict=True)]
        if bands is None:
            bands = bands_for_model(self.name, labels, model_bands)
        chosen = select_bands(self.name, len(files), bands, labels)
        self.files = tuple(files[k - 1] for k in chosen)
        self.members = tuple(members[k - 1] for k in chosen)
        self._labels = tuple(labels[k - 1] for k in chosen)
        self._georefs = tuple(f.georef if f.georef is not None and m.georef.crs_wkt is None
                              else m.georef for f, m in zip(self.files, self.members,
                                                            strict=True))
        self._target = _finest(self.members, self._georefs)
        _, height, width = self.members[self._target].shape
        self._shape = (len(self.members), height, width)
        self._aligned = tuple(self._same_grid(k) for k in range(len(self.members)))
        self._gather = tuple(self.resampling == "nearest" and self._axis_aligned(k)
                             for k in range(len(self.members)))
        self._dtype = np.result_type(*(m.dtype for m in self.members))
        self.check_dtype()
        self._local = threading.local()

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self._dtype)

    @property
    def georef(self) -> GeoRef:
        return self._georefs[self._target]

    @property
    def nodata(self) -> float | None:
        values = {_nodata(f, m) for f, m in zip(self.files, self.members, strict=True)}
        return values.pop() if len(values) == 1 else None

    @property
    def scale_offset(self) -> ScaleOffset | None:
        own = [m.scale_offset for m in self.members]
        scales = [f.scale if f.scale is not None else (o.scales[0] if o else 1.0)
                  for f, o in zip(self.files, own, strict=True)]
        offsets = [f.offset if f.offset is not None else (o.offsets[0] if o else 0.0)
                   for f, o in zip(self.files, own, strict=True)]
        given = any(f.scale is not None or f.offset is not None for f in self.files)
        return ScaleOffset.of(scales, offsets, "STAC raster:bands" if given
                              else "GDAL band scale/offset")

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        pixels = np.empty((self._shape[0], window.height, window.width), self._dtype)
        valid = np.empty(pixels.shape, bool)
        for k, (file, member) in enumerate(zip(self.files, self.members, strict=True)):
            if self._aligned[k]:
                band, ok = member.read(window)
            elif self._gather[k]:
                band, ok = self._nearest(k, window)
            else:
                band, ok = self._warped(k, window)
            pixels[k], valid[k] = band[0], ok[0]
            if file.nodata is not None:
                valid[k] &= ~_equal(band[0], file.nodata)
        return pixels, valid

    def _warped(self, k: int, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Band ``k`` resampled onto the stack's grid, through this thread's warped VRT."""
        member, rio_window = self.members[k], RioWindow(window.x, window.y, window.width,
                                                        window.height)
        try:
            vrt = self._vrt(k)
            with member._env():
                pixels = vrt.read([member.bands[0]], window=rio_window)
                # With a nodata value GDAL's mask is ``value != nodata``: no second warp.
                masks = (None if vrt.nodata is not None else
                         vrt.read_masks([member.bands[0]], window=rio_window))
        except RasterioError as err:
            raise InputError(member.name, f"failed to resample {window}: {err}") from err
        valid = ~_equal(pixels, vrt.nodata) if masks is None else masks > 0
        if pixels.dtype.kind == "f":
            valid &= np.isfinite(pixels)
        return pixels, valid

    def _nearest(self, k: int, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Band ``k`` by nearest neighbour on an axis-aligned grid in the same CRS: the source
        pixel under each output pixel's centre, gathered from one read of the pixels under
        the window (what GDAL's warper picks, without its cost)."""
        member = self.members[k]
        a, _, c, _, e, f = self.georef.transform
        ma, _, mc, _, me, mf = self._georefs[k].transform
        _, height, width = member.shape
        cols = np.floor(((window.x + np.arange(window.width) + 0.5) * a + c - mc) / ma)
        rows = np.floor(((window.y + np.arange(window.height) + 0.5) * e + f - mf) / me)
        inside = (((rows >= 0) & (rows < height))[:, None]
                  & ((cols >= 0) & (cols < width))[None, :])
        rows = np.clip(rows, 0, height - 1).astype(np.int64)
        cols = np.clip(cols, 0, width - 1).astype(np.int64)
        y0, x0 = int(rows.min()), int(cols.min())
        pixels, valid = member.read(Window(y0, x0, int(rows.max()) - y0 + 1,
                                           int(cols.max()) - x0 + 1))
        index = np.ix_(rows - y0, cols - x0)
        return pixels[:, index[0], index[1]], valid[:, index[0], index[1]] & inside

    def _vrt(self, k: int) -> WarpedVRT:
        cache: dict[int, WarpedVRT] = self._local.__dict__.setdefault("vrts", {})
        if k not in cache:
            member, (_, height, width) = self.members[k], self._shape
            extra: dict[str, Any] = {}
            if self.files[k].nodata is not None:
                extra["src_nodata"] = self.files[k].nodata
            if self._georefs[k] is not member.georef:  # placed by the catalogue
                extra.update(src_crs=self._georefs[k].crs_wkt,
                             src_transform=_affine(self._georefs[k]))
            with member._env():
                cache[k] = WarpedVRT(
                    member._dataset(), crs=self.georef.crs_wkt, transform=_affine(self.georef),
                    width=width, height=height, resampling=Resampling[self.resampling], **extra)
        return cache[k]

    def _same_grid(self, k: int) -> bool:
        """Band ``k`` lies on the stack's grid: read as stored."""
        if k == self._target:
            return True
        mine, target = self._georefs[k], self.georef
        close = np.allclose(mine.transform, target.transform, rtol=0, atol=1e-9)
        same_shape = self.members[k].shape[1:] == self._shape[1:]
        return mine.crs_wkt == target.crs_wkt and close and same_shape

    def _axis_aligned(self, k: int) -> bool:
        """Both grids north-up without rotation, in the same CRS: nearest is a plain gather."""
        mine, target = self._georefs[k], self.georef
        return mine.crs_wkt == target.crs_wkt and all(
            t[1] == 0 and t[3] == 0 for t in (mine.transform, target.transform))


def _stem(member: GeoTIFFSource, file: BandFile) -> str | None:
    """A single-band file's name names its band (``B04.tif``: Sentinel-2's red)."""
    if file.labels or member.band_labels[0]:
        return None
    return Path(str(member.path)).stem


def _nodata(file: BandFile, member: GeoTIFFSource) -> float | None:
    return file.nodata if file.nodata is not None else member.nodata


def _equal(pixels: np.ndarray, value: float) -> np.ndarray:
    return np.isnan(pixels) if np.isnan(value) else pixels == value


def _finest(members: Sequence[GeoTIFFSource], georefs: Sequence[GeoRef]) -> int:
    """The band with the smallest pixel area (the first of equals): the stack's grid."""
    def area(k: int) -> float:
        a, b, _, d, e, _ = georefs[k].transform
        return abs(a * e - b * d)

    unplaced = [m for m, g in zip(members, georefs, strict=True) if g.crs_wkt is None]
    if unplaced and len(members) > 1:
        raise BandError(unplaced[0].name, "has no CRS (nor does its catalogue give one), so "
                        "it cannot be stacked with other bands")
    return min(range(len(members)), key=area)


def _affine(georef: GeoRef) -> Any:
    from affine import Affine

    return Affine(*georef.transform)
