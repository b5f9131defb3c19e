"""GeoTIFF (and anything else GDAL reads) through rasterio, lazily and thread-safely.

A rasterio dataset handle must not be shared between threads, so each thread opens its own
handle on first use (cheap: GDAL reads the header only). The source pickles as its path and
band list, so Dask processes and cluster workers reopen the file themselves.

A URL (``s3://``, ``gs://``, ``https://`` …, see :mod:`tilerun.sources.remote`) is read through
GDAL's virtual file systems: every open and read runs inside :meth:`GeoTIFFSource._env`, which
then carries the remote options, in whichever thread or process does it. GDAL's ``/vsicurl/``
cache is shared by the handles of a process, so a thread's own open does not refetch the header.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import from_gcps
from rasterio.windows import Window as RioWindow

from tilerun.errors import InputError, TilerunWarning, UnsupportedDtypeError, ignoring
from tilerun.geometry import GeoRef, Window
from tilerun.sources.bandnames import band_labels
from tilerun.sources.bands import BandSpec, bands_for_model, select_bands
from tilerun.sources.base import PerThreadHandles, ScaleOffset, Source
from tilerun.sources.guards import (
    check_tiff_complete,
    check_vrt_sources,
    quiet_readers,
    require_existing,
    require_regular_file,
)
from tilerun.sources.remote import gdal_detail, remote_options, remote_problem, remote_url

#: GDAL's block cache per process (MB). GDAL's default (5 % of RAM) would let memory grow with
#: the size of the image read; tilerun reads each window about once, so a small cache suffices.
GDAL_CACHE_MB = 64


def _numpy_dtype(name: str, gdal_type: str) -> np.dtype[Any]:
    """numpy has no type for GDAL's complex integers (CInt16, CInt32): refuse them clearly."""
    try:
        return np.dtype(gdal_type)
    except TypeError:
        raise UnsupportedDtypeError(
            name, f"pixel type {gdal_type} cannot be fed to a model"
        ) from None


def _georef(ds: Any) -> tuple[GeoRef, str | None]:
    """The dataset's CRS and affine, plus a note to show when they were fitted to GCPs.

    A raster georeferenced only by ground control points has no geotransform (rasterio then
    gives the identity): the output would silently lose its place on Earth. An affine fitted
    to the GCPs by least squares keeps it, exactly so for GCPs on an affine grid; the note
    gives the worst GCP's distance from the fit, in pixels, so a warped image is noticed.
    """
    gcps, gcp_crs = ds.gcps
    if not gcps or not ds.transform.is_identity:
        crs = ds.crs.to_wkt() if ds.crs else None
        return GeoRef(crs, tuple(ds.transform)[:6]), None
    transform = from_gcps(gcps) if len(gcps) >= 3 else None
    if transform is None or transform.is_degenerate:
        return GeoRef(None, tuple(ds.transform)[:6]), (
            f"has {len(gcps)} GCP(s), too few to fit a transform; the output is not georeferenced"
        )
    a, b, c, d, e, f = tuple(~transform)[:6]
    residual = max(math.dist((a * g.x + b * g.y + c, d * g.x + e * g.y + f), (g.col, g.row))
                   for g in gcps)
    crs = gcp_crs.to_wkt() if gcp_crs else None
    note = (f"georeferenced by {len(gcps)} GCPs only: the output's transform was fitted to "
            f"them (max residual {residual:.2f} px)")
    return GeoRef(crs, tuple(transform)[:6]), note


def _labels(ds: Any, colour: bool) -> tuple[tuple[str, ...], ...]:
    """Every band's names: description, BAND_NAME/COMMON_NAME tags, else (``colour``) its
    colour interpretation. GDAL gives any 3- or 4-band byte GeoTIFF red, green, blue (alpha)
    unless told otherwise, so colours only serve names a user asks for, never the automatic
    choice of a model's bands."""
    labels = []
    for k in range(1, ds.count + 1):
        tags = ds.tags(k)
        labels.append(band_labels(ds.descriptions[k - 1], tags.get("BAND_NAME"),
                                  tags.get("COMMON_NAME"),
                                  colour=ds.colorinterp[k - 1].name if colour else None))
    return tuple(labels)


class GeoTIFFSource(PerThreadHandles, Source):
    """A raster file read window by window through rasterio."""

    def __init__(self, path: str | Path, bands: BandSpec | None = None,
                 model_bands: Sequence[str] | None = None) -> None:
        """``bands``: numbers and/or names; when None, the bands ``model_bands`` (a model
        spec's band names) name, if the raster names its bands, else all bands in order."""
        url = remote_url(path)
        self.remote = url is not None
        #: What rasterio opens: the URL as given (a Path would merge its ``//``), else a Path.
        self.path: str | Path = url if url is not None else Path(path)
        self.name = url if url is not None else str(path)
        self._files: tuple[Path, ...] | None = None  # content_files(), once listed
        if not self.remote:
            self._check_local()
        try:
            with self._env(), quiet_readers(), rasterio.open(self.path) as ds:
                labels = _labels(ds, colour=True)
                if bands is None:
                    bands = bands_for_model(self.name, _labels(ds, colour=False), model_bands)
                self.bands = select_bands(self.name, ds.count, bands, labels)
                self._labels = tuple(labels[b - 1] for b in self.bands)
                self._scale_offset = ScaleOffset.of(
                    [ds.scales[b - 1] for b in self.bands],
                    [ds.offsets[b - 1] for b in self.bands], "GDAL band scale/offset")
                self._shape = (len(self.bands), ds.height, ds.width)
                self._dtype = _numpy_dtype(self.name, ds.dtypes[self.bands[0] - 1])
                self._nodata = ds.nodata
                self._georef, note = _georef(ds)
                dtypes = {ds.dtypes[b - 1] for b in self.bands}
                if not self.remote:
                    check_vrt_sources(ds, self.name)
        except RasterioError as err:
            raise self._open_error(err) from err
        if note:
            warnings.warn(f"{self.name}: {note}", TilerunWarning, stacklevel=2)
        if len(dtypes) > 1:
            raise InputError(self.name, f"selected bands mix pixel types {sorted(dtypes)}")
        self.check_dtype()
        self._local = threading.local()

    def _check_local(self) -> None:
        """The local-file guards, before GDAL, whose reasons would be obscure. A URL skips them:
        it has no file mode to check, and a truncated object fails at its first read anyway."""
        require_existing(Path(self.path), self.name)
        require_regular_file(Path(self.path), self.name)
        check_tiff_complete(Path(self.path), self.name)

    def _open_error(self, err: RasterioError) -> InputError:
        """One line for a file GDAL cannot open; for a URL, what went wrong on the network."""
        if self.remote:
            return InputError(self.name, remote_problem(err))
        if Path(self.path).is_dir():
            return InputError(self.name, "is a folder, not a raster file")
        return InputError(self.name, f"not a raster GDAL can read ({err})")

    def _env(self) -> rasterio.Env:
        """GDAL options for one open or read: set per call, as rasterio's Env is per thread
        and a Dask worker process starts without any."""
        if self.remote:
            return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, **remote_options())
        return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    @property
    def georef(self) -> GeoRef:
        return self._georef

    @property
    def nodata(self) -> float | None:
        return self._nodata

    def content_files(self) -> tuple[Path, ...] | None:
        """The files GDAL reads for this raster: the file, a VRT's sources, overviews and
        side-car files (``dataset.files``); None for a URL. Listed once (it opens the raster):
        a run asks for the digest and for the files' time stamps."""
        if self.remote:
            return None
        if self._files is None:
            self._files = self._list_files()
        return self._files

    def _list_files(self) -> tuple[Path, ...]:
        try:
            with self._env(), quiet_readers(), rasterio.open(self.path) as ds:
                listed = [Path(f) for f in ds.files]
        except RasterioError:
            listed = []
        files = [Path(self.path)] + [f for f in listed if f != Path(self.path)]
        return tuple(f for f in files if f.is_file())

    def _dataset(self) -> Any:
        """This thread's handle. Opening it again repeats what the first open told the user
        already (rasterio's NotGeoreferencedWarning for a raster without georeferencing): the
        opens are serialised so that silencing it (process-wide) cannot race another's."""
        ds = getattr(self._local, "dataset", None)
        if ds is None:
            with ignoring(category=NotGeoreferencedWarning), self._env():
                ds = rasterio.open(self.path)
            self._local.dataset = ds
        return ds

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        rio_window = RioWindow(window.x, window.y, window.width, window.height)
        try:
            ds = self._dataset()  # a thread's first open may fail too (a URL gone mid-run)
            with self._env():
                pixels = ds.read(self.bands, window=rio_window)
                masks = ds.read_masks(self.bands, window=rio_window)
        except RasterioError as err:
            problem = remote_problem(err) if self.remote else gdal_detail(err)
            raise InputError(self.name, f"failed to read {window}: {problem}") from err
        valid = masks > 0
        if pixels.dtype.kind == "f":
            valid &= np.isfinite(pixels)
        return pixels, valid
