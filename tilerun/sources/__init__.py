"""Sources (readers): everything the engine can read a window from.

:func:`open_source` turns what a user passes (a path, a URL such as ``s3://bucket/scene.tif``
or ``https://host/scene.tif``, a numpy/dask array, an xarray DataArray, or a ready
:class:`Source`) into a :class:`Source`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from tilerun.errors import InputError
from tilerun.geometry import GeoRef
from tilerun.sources.array import ArraySource
from tilerun.sources.bands import BandSpec
from tilerun.sources.base import ScaleOffset, Source
from tilerun.sources.geotiff import GeoTIFFSource
from tilerun.sources.guards import quiet_readers
from tilerun.sources.remote import remote_url
from tilerun.sources.stac import is_stac_item, open_stac_item
from tilerun.sources.stack import RESAMPLING, BandFile, StackSource

__all__ = ["RESAMPLING", "ArraySource", "BandFile", "GeoRef", "GeoTIFFSource", "ScaleOffset",
           "Source", "StackSource", "open_source", "open_stac_item"]


def open_source(obj: Any, bands: BandSpec | None = None, *,
                model_bands: Sequence[str] | None = None, resampling: str = "nearest",
                **slide: Any) -> Source:
    """Open anything tilerun reads; ``bands`` (1-based numbers and/or names such as ``red``)
    select and order the bands.

    A list of paths is one scene's per-band files, stacked (:class:`StackSource`); a
    ``.json`` path or URL is a STAC Item (:func:`open_stac_item`). With no ``bands``, the
    bands a model's spec names (``model_bands``) are chosen by name where the input names its
    bands. ``resampling`` resamples stacked bands coarser than the finest. ``slide`` options
    (``mpp``, ``level``, ``slide_mpp``) apply to whole-slide images, which are recognised by
    OpenSlide (a pyramidal TIFF with GeoTIFF tags stays a raster). A URL is read through GDAL
    (OpenSlide reads local files only).
    """
    if isinstance(obj, Source):
        if bands is not None:
            raise InputError(obj.name, "pass bands when creating the Source, not to open_source")
        return obj
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(p, (str, Path)) for p in obj):
        files = [BandFile(str(remote_url(p) or p)) for p in obj]
        return StackSource(files, bands=bands, model_bands=model_bands, resampling=resampling)
    if isinstance(obj, (str, Path)) and is_stac_item(obj):
        return open_stac_item(obj, bands if bands is not None else model_bands,
                              resampling=resampling)
    if isinstance(obj, (str, Path)):
        if remote_url(obj) is not None:
            return GeoTIFFSource(obj, bands=bands, model_bands=model_bands)
        from tilerun.sources.slide import is_slide, open_slide

        with quiet_readers():  # a damaged file must end in one error line, not in warnings
            slide_file = Path(obj).is_file() and is_slide(obj)
        if slide_file:
            return open_slide(obj, bands=bands, **slide)
        return GeoTIFFSource(obj, bands=bands, model_bands=model_bands)
    if isinstance(obj, (np.ndarray, da.Array)):
        return ArraySource(obj, bands=bands)
    if type(obj).__name__ == "DataArray":
        return ArraySource.from_xarray(obj, bands=bands, model_bands=model_bands)
    raise InputError(repr(type(obj)), "not a path, numpy/dask array, xarray DataArray or Source")
