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
from tilerun.sources.array import ArraySource
from tilerun.sources.base import GeoRef, Source
from tilerun.sources.geotiff import GeoTIFFSource
from tilerun.sources.guards import quiet_readers
from tilerun.sources.remote import remote_url

__all__ = ["ArraySource", "GeoRef", "GeoTIFFSource", "Source", "open_source"]


def open_source(obj: Any, bands: Sequence[int] | None = None, **slide: Any) -> Source:
    """Open anything tilerun reads; ``bands`` are 1-based and select and order the bands.

    ``slide`` options (``mpp``, ``level``, ``slide_mpp``) apply to whole-slide images, which
    are recognised by OpenSlide (a pyramidal TIFF with GeoTIFF tags stays a raster). A URL
    is read through GDAL (OpenSlide reads local files only).
    """
    if isinstance(obj, Source):
        if bands is not None:
            raise InputError(obj.name, "pass bands when creating the Source, not to open_source")
        return obj
    if isinstance(obj, (str, Path)):
        if remote_url(obj) is not None:
            return GeoTIFFSource(obj, bands=bands)
        from tilerun.sources.slide import is_slide, open_slide

        with quiet_readers():  # a damaged file must end in one error line, not in warnings
            slide_file = Path(obj).is_file() and is_slide(obj)
        if slide_file:
            return open_slide(obj, bands=bands, **slide)
        return GeoTIFFSource(obj, bands=bands)
    if isinstance(obj, (np.ndarray, da.Array)):
        return ArraySource(obj, bands=bands)
    if type(obj).__name__ == "DataArray":
        return ArraySource.from_xarray(obj, bands=bands)
    raise InputError(repr(type(obj)), "not a path, numpy/dask array, xarray DataArray or Source")
