"""Recognising and opening whole-slide files: OpenSlide itself, and the errors of using it.

This module owns the boundary with the OpenSlide library: importing it (an optional
dependency, so its absence is one :class:`~tilerun.errors.InputError`), the ``SlideError``
family every slide failure is raised as, opening a handle, and the decision
:func:`is_slide` makes between :class:`~tilerun.sources.slide.SlideSource` and the GeoTIFF
reader. It is kept apart from the source so that :func:`tilerun.sources.open_source` can ask
"is this a slide?" and the source's grid and reading code never touch format detection.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from tilerun.errors import InputError

#: GeoTIFF tags: ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory.
GEOTIFF_TAGS = frozenset({33550, 33922, 34264, 34735})


class SlideError(InputError):
    """A whole-slide image cannot be used as asked."""


class SlideOpenError(SlideError):
    """OpenSlide cannot open the file (and, where tried, GDAL cannot read it either)."""


class SlideMppError(SlideError):
    """The slide has no usable microns-per-pixel metadata for the resolution asked."""


class SlideLevelError(SlideError):
    """The pyramid level asked for does not exist."""


def import_openslide() -> ModuleType:
    """The ``openslide`` module, or an :class:`~tilerun.errors.InputError` saying how to
    install it."""
    try:
        import openslide
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise InputError(
            "openslide",
            f"openslide-python is not installed ({err}); pip install "
            "openslide-python openslide-bin",
        ) from err
    return openslide


def open_handle(path: Path, name: str) -> Any:
    """A new ``openslide.OpenSlide`` on ``path``; :class:`SlideOpenError` (naming ``name``)
    when OpenSlide cannot open it."""
    openslide = import_openslide()
    try:
        return openslide.OpenSlide(str(path))
    except (openslide.OpenSlideError, OSError) as err:
        raise SlideOpenError(name, f"OpenSlide cannot open it ({err})") from err


def _is_geotiff(path: Path) -> bool:
    """True when the first IFD carries GeoTIFF tags (tifffile, else GDAL through rasterio)."""
    try:
        import tifffile
    except ImportError:  # pragma: no cover - a dependency, but ask GDAL if it is missing
        pass
    else:
        try:
            with tifffile.TiffFile(path) as tif:
                tags = tif.pages.first.tags
                return any(code in tags for code in GEOTIFF_TAGS)
        except Exception:  # not parseable by tifffile: ask GDAL below
            pass
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as ds:
            return ds.crs is not None or bool(ds.gcps[0]) or not ds.transform.is_identity
    except RasterioError:
        return False


def is_slide(path: str | Path) -> bool:
    """Whether ``path`` should be read by :class:`SlideSource` rather than through GDAL.

    True for every vendor format OpenSlide detects; for OpenSlide's ``generic-tiff`` only when
    the TIFF is not a GeoTIFF (tiled GeoTIFFs and COGs are generic tiled TIFFs too, and keep
    going to rasterio).
    """
    openslide = import_openslide()
    try:
        fmt = openslide.OpenSlide.detect_format(str(path))
    except (openslide.OpenSlideError, OSError, ValueError):
        return False
    if fmt is None:
        return False
    if fmt != "generic-tiff":
        return True
    return not _is_geotiff(Path(path))
