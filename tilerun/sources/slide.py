"""Whole-slide images (everything OpenSlide opens), read lazily window by window.

:class:`SlideSource` presents one pyramid level, or a resampling of one, as an RGB ``uint8``
``(3, height, width)`` image. Each thread opens its own OpenSlide handle on first use; the
source pickles as its path and options. :func:`open_slide` falls back to GDAL for a TIFF
OpenSlide refuses.

This module owns the source itself: validating the options, putting the parts below
together, the :class:`~tilerun.sources.base.Source` interface (shape, metadata, thumbnail,
windows) and pickling. Each part lives beside it, testable on its own:

* :mod:`tilerun.sources.slide_format` — importing OpenSlide, the ``SlideError`` family,
  :func:`is_slide` (slide or GeoTIFF?);
* :mod:`tilerun.sources.slide_props` — parsing the slide's properties (pyramid, mpp, bounds,
  background colour, the metadata kept);
* :mod:`tilerun.sources.slide_grid` — level/mpp selection and the output grid arithmetic
  (read its docstring for the coordinate conventions);
* :mod:`tilerun.sources.slide_read` — reading windows: per-thread handles, ``read_region``,
  compositing over the background, resampling (read its docstring for how reads are placed);
* :mod:`tilerun.sources.resample` — the separable tent filter.

Their public names are re-exported here, where the rest of tilerun imports them from.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tilerun.errors import InputError, OptionError, TilerunWarning, ignoring
from tilerun.geometry import Window
from tilerun.sources.bands import BandSpec, select_bands
from tilerun.sources.base import Source
from tilerun.sources.guards import require_existing
from tilerun.sources.slide_format import (
    GEOTIFF_TAGS,
    SlideError,
    SlideLevelError,
    SlideMppError,
    SlideOpenError,
    import_openslide,
    is_slide,
    open_handle,
)
from tilerun.sources.slide_grid import (
    IMPLAUSIBLE_MPP,
    MPP_TOLERANCE,
    UPSAMPLE_WARN_FACTOR,
    Affine,
    level_grid,
    micron_affine,
    mpp_grid,
)
from tilerun.sources.slide_props import SELECTED_PROPERTIES, positive_float, read_properties
from tilerun.sources.slide_read import LevelReader

#: A slide's bands, as ``--bands`` may name them.
RGB = (("red",), ("green",), ("blue",))

__all__ = [
    "GEOTIFF_TAGS",
    "IMPLAUSIBLE_MPP",
    "MPP_TOLERANCE",
    "SELECTED_PROPERTIES",
    "UPSAMPLE_WARN_FACTOR",
    "SlideError",
    "SlideLevelError",
    "SlideMppError",
    "SlideOpenError",
    "SlideSource",
    "is_slide",
    "open_slide",
]


class SlideSource(Source):
    """A whole-slide image (anything OpenSlide opens) as a lazy RGB ``uint8`` source.

    Exactly one of ``mpp`` (microns per output pixel: resample to it) and ``level`` (a
    pyramid level as stored) may be given; with neither, level 0 is used as stored.
    ``slide_mpp`` overrides the level-0 microns per pixel the slide declares (or lacks).
    ``bands`` selects and orders the R, G, B bands (1-based).
    """

    is_slide = True

    def __init__(
        self,
        path: str | Path,
        *,
        mpp: float | None = None,
        level: int | None = None,
        slide_mpp: float | None = None,
        bands: BandSpec | None = None,
    ) -> None:
        import_openslide()
        self.path = Path(path)
        self.name = str(path)
        self.options: dict[str, Any] = {
            "mpp": mpp,
            "level": level,
            "slide_mpp": slide_mpp,
            "bands": None if bands is None else tuple(bands),
        }
        if mpp is not None and level is not None:
            raise OptionError("--mpp/--level", "give one of them, not both")
        if mpp is not None and positive_float(mpp) is None:
            raise OptionError("--mpp", f"must be a positive number of microns, not {mpp!r}")
        if slide_mpp is not None and positive_float(slide_mpp) is None:
            raise OptionError(
                "--slide-mpp", f"must be a positive number of microns, not {slide_mpp!r}"
            )
        require_existing(self.path, self.name)
        slide = open_handle(self.path, self.name)
        try:
            self._init_from(slide, mpp=mpp, level=level, slide_mpp=slide_mpp, bands=bands)
        finally:
            slide.close()

    def _init_from(
        self,
        slide: Any,
        *,
        mpp: float | None,
        level: int | None,
        slide_mpp: float | None,
        bands: BandSpec | None,
    ) -> None:
        """Properties (slide_props), then the grid (slide_grid), then the bands."""
        info = read_properties(slide, slide_mpp)
        self.vendor: str | None = info.vendor
        self.level_dimensions: tuple[tuple[int, int], ...] = info.level_dimensions
        self.level_downsamples: tuple[float, ...] = info.level_downsamples
        self.mpp0: tuple[float, float] | None = info.mpp0
        self.mpp0_origin: str = info.mpp0_origin
        self.bounds: tuple[int, int, int, int] = info.bounds
        self.bounds_from_slide: bool = info.bounds_from_slide
        self.background: tuple[int, int, int] = info.background

        # mpp_grid warns with a stacklevel that counts this frame and __init__'s
        if mpp is not None:
            grid = mpp_grid(self.name, info, float(mpp))
        else:
            grid = level_grid(self.name, info, 0 if level is None else level)
        self.level: int = grid.level
        self.downsample: float = grid.downsample
        self.resampled: bool = grid.resampled
        self._shape: tuple[int, int, int] = grid.shape
        self.level0_affine: Affine = grid.level0_affine
        self.mpp: float | None = grid.mpp
        self._reader = LevelReader(
            self.path, self.name, grid.level, self.background, grid.x, grid.y
        )

        self.bands = select_bands(self.name, 3, bands, RGB)
        self._band_index = [b - 1 for b in self.bands]
        self._properties = dict(info.properties)

    # -- Source ------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.bands), self._shape[1], self._shape[2])

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(np.uint8)

    @property
    def band_labels(self) -> tuple[tuple[str, ...], ...]:
        return tuple(RGB[b - 1] for b in self.bands)

    def pixel_size(self) -> tuple[float, str] | None:
        """``(µm per output pixel, "um")``, or None when the slide's mpp is unknown."""
        return (self.mpp, "um") if self.mpp is not None else None

    def content_files(self) -> tuple[Path, ...]:
        """The slide's file, and the files of a folder beside it of the same name (MIRAX
        ``.mrxs`` keeps its pixels there)."""
        beside = self.path.with_suffix("")
        mirax = self.path.suffix.lower() == ".mrxs" and beside.is_dir()
        extra = sorted(p for p in beside.rglob("*") if p.is_file()) if mirax else []
        return (self.path, *extra)

    def metadata(self) -> dict[str, Any]:
        """What the sink stores about the slide and the grid (JSON-serialisable)."""
        return {
            "source": str(self.path),
            "vendor": self.vendor,
            "level": self.level,
            "level_downsample": self.downsample,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "resampled": self.resampled,
            "resampling": "triangle (antialiased bilinear), separable"
            if self.resampled
            else "none (level as stored)",
            "mpp0": list(self.mpp0) if self.mpp0 is not None else None,
            "mpp0_origin": self.mpp0_origin,
            "mpp": self.mpp,
            "bounds": list(self.bounds),
            "bounds_from_slide": self.bounds_from_slide,
            "level0_affine": list(self.level0_affine),
            "micron_affine": micron_affine(self.level0_affine, self.mpp0),
            "affine_convention": "output pixel corner (col, row) -> level-0 pixel corner (x, y); "
            "micron_affine: -> microns from the level-0 origin",
            "shape": list(self.shape),
            "background_color": "{:02X}{:02X}{:02X}".format(*self.background),
            "properties": dict(self._properties),
        }

    def thumbnail(self, max_size: int) -> np.ndarray:
        """The output region as RGB ``(3, h, w)`` with ``max(h, w) ≤ max_size`` (for tissue).

        Read through a second source on the same file whose pixel is ``factor`` output pixels,
        so it comes from the coarsest suitable pyramid level, antialiased, over the same region.
        With ``slide_mpp = 1`` its "µm" are level-0 pixels, which works without mpp metadata.
        """
        _, height, width = self.shape
        factor = max(height, width) / max_size
        if factor <= 1:
            return self.read(Window(0, 0, height, width))[0][:3]
        step = self.level0_affine[0] * factor
        with ignoring(category=TilerunWarning):
            small = SlideSource(self.path, mpp=step, slide_mpp=1.0)
        _, h, w = small.shape
        return small.read(Window(0, 0, h, w))[0]

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        _, height, width = self._shape
        if window.is_empty or not Window(0, 0, height, width).contains(window):
            raise ValueError(f"{self.name}: {window} is not inside the {height}×{width} image")
        pixels = self._reader.read(window)
        if self._band_index != [0, 1, 2]:
            pixels = pixels[self._band_index]
        valid = np.ones(pixels.shape, dtype=bool)
        return pixels, valid

    # -- pickling ----------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        with ignoring(category=TilerunWarning):  # warned when first opened
            self.__init__(state["path"], **state["options"])  # type: ignore[misc]


def open_slide(
    path: str | Path,
    *,
    mpp: float | None = None,
    level: int | None = None,
    slide_mpp: float | None = None,
    bands: BandSpec | None = None,
) -> Source:
    """A :class:`SlideSource`, or — when OpenSlide cannot open the file but GDAL can read it
    and neither ``mpp`` nor a level other than 0 was asked — a GeoTIFF source, with a
    :class:`TilerunWarning` that says so. When neither can, the error names both."""
    try:
        return SlideSource(path, mpp=mpp, level=level, slide_mpp=slide_mpp, bands=bands)
    except SlideOpenError as slide_err:
        from tilerun.sources.geotiff import GeoTIFFSource

        try:
            source = GeoTIFFSource(path, bands=bands)
        except InputError as gdal_err:
            raise SlideOpenError(
                str(path),
                f"{slide_err.problem}, and GDAL cannot read it either ({gdal_err.problem})",
            ) from slide_err
        if mpp is not None or level not in (None, 0):
            raise SlideOpenError(
                str(path),
                f"{slide_err.problem}; GDAL can read it, but --mpp/--level need OpenSlide",
            ) from slide_err
        warnings.warn(
            f"{path}: {slide_err.problem}; reading it through GDAL (GeoTIFF source) instead",
            TilerunWarning,
            stacklevel=2,
        )
        return source
