"""Whole-slide images (everything OpenSlide opens), read lazily window by window.

:class:`SlideSource` presents one pyramid level, or a resampling of one, as an RGB ``uint8``
``(3, height, width)`` image. Each thread opens its own OpenSlide handle on first use; the
source pickles as its path and options.

Output grid
-----------
The grid covers the scanned region only: the rectangle of the ``openslide.bounds-*``
properties when the slide has them (level-0 pixels), the whole of level 0 otherwise. Call it
``(bx, by, bw, bh)``.

Coordinates are *corner* coordinates: level-0 pixel ``(i, j)`` spans ``[i, i + 1) × [j, j + 1)``
and its centre is at ``(i + 0.5, j + 0.5)``. A level-``L`` pixel ``k`` spans level-0
``[k·d_L, (k + 1)·d_L)``, where ``d_L`` is OpenSlide's downsample of that level (which may be
non-integer, e.g. 4.0161; OpenSlide places a level with this one factor on both axes, and so
does tilerun). :attr:`SlideSource.level0_affine` ``(a, b, c, d, e, f)`` maps output pixel
corner ``(col, row)`` to the level-0 corner ``(x0, y0) = (a·col + b·row + c, d·col + e·row + f)``,
as a GDAL/rasterio transform does; ``b = d = 0``.

``mpp=X`` (resampled):
    ``s_x = X / mpp_x``, ``s_y = X / mpp_y`` (level-0 pixels per output pixel);
    ``width = floor(bw / s_x + 0.5)``, ``height = floor(bh / s_y + 0.5)`` (at least 1);
    ``x0 = bx + col·s_x``, ``y0 = by + row·s_y`` — affine ``(s_x, 0, bx, 0, s_y, by)``.
    The centre of output pixel ``col`` is at level-0 corner coordinate
    ``bx + (col + 0.5)·s_x``, i.e. at level-0 *pixel index* ``bx + (col + 0.5)·s_x − 0.5``,
    and at level-``L`` pixel index ``u = (bx + (col + 0.5)·s_x) / d_L − 0.5``.

``level=N`` (as stored, no resampling):
    ``ix0 = floor(bx / d_N)``, ``ix1 = min(ceil((bx + bw) / d_N), level width)`` (same for y);
    output pixel ``col`` *is* stored level-``N`` pixel ``ix0 + col``;
    ``x0 = (ix0 + col)·d_N`` — affine ``(d_N, 0, ix0·d_N, 0, d_N, iy0·d_N)``.

Reading
-------
OpenSlide's ``read_region(location, level, size)`` takes the *level-0* corner of the first
pixel and renders level ``L`` from the continuous level-``L`` position ``location / d_L``:
when that is not an integer (non-integer downsample), OpenSlide itself interpolates
bilinearly. tilerun therefore never assumes a read starts on a stored pixel: with ``lo`` the
first level-``L`` pixel index the filter needs, it reads from the integer level-0 location
``x_read = round(floor(lo)·d_L)``, knows that sample ``j`` lies at level-``L`` pixel index
``p + j`` with ``p = x_read / d_L`` exactly, and resamples the samples to the output positions
``u``. For an integer downsample ``p`` is an integer and OpenSlide returns stored pixels
untouched; otherwise ``|p − floor(lo)| ≤ 0.5 / d_L`` (half a level-0 pixel), the least
interpolation OpenSlide's integer location allows. When every ``u − p`` is an integer and no
scale change is asked (``level=N`` where ``(ix0 + col)·d_N`` is an integer — always for
integer downsamples — or an ``mpp`` equal to a level's on such a grid) the read is returned as
is, bit for bit what ``read_region`` gives.

Resampling is separable, in float32, with a triangle (tent) filter of half-width
``R = max(r, 1)`` source pixels, ``r`` = source pixels per output pixel: plain bilinear when
upsampling or at the same scale, an antialiased linear filter (as PIL's BILINEAR reduce and
``torch.nn.functional.interpolate(..., antialias=True)``) when downsampling, so factors above 2
do not alias. Taps outside the level are dropped and the weights renormalised. ``mpp=X`` reads
from the coarsest level whose pixel size is at most ``X·(1 + MPP_TOLERANCE)``.

RGBA is composited over the slide's background colour (``openslide.background-color``, white
when absent) in float before resampling, then rounded to ``uint8``: transparent areas become
background, never black, and count as valid data.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from tilerun.errors import InputError, OptionError, TilerunWarning
from tilerun.geometry import Window
from tilerun.sources.bands import select_bands
from tilerun.sources.base import Source
from tilerun.sources.resample import Axis, apply_taps, taps

#: A level is "at or finer than" a target mpp when its mpp ≤ target · (1 + MPP_TOLERANCE):
#: scanners round their mpp (0.2282 · 4 = 0.9127 serves a request for 0.912).
MPP_TOLERANCE = 0.02

#: Asking for pixels finer than level 0 by more than this factor warns (upsampling invents
#: no detail).
UPSAMPLE_WARN_FACTOR = 1.5

#: Level-0 pixels larger than this (µm) are almost certainly a 72/96 dpi screen default.
IMPLAUSIBLE_MPP = 100.0

#: OpenSlide properties copied into :meth:`SlideSource.metadata`.
SELECTED_PROPERTIES = (
    "openslide.vendor",
    "openslide.quickhash-1",
    "openslide.comment",
    "openslide.objective-power",
    "openslide.mpp-x",
    "openslide.mpp-y",
    "openslide.bounds-x",
    "openslide.bounds-y",
    "openslide.bounds-width",
    "openslide.bounds-height",
    "openslide.background-color",
    "openslide.level-count",
)

#: GeoTIFF tags: ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory.
GEOTIFF_TAGS = frozenset({33550, 33922, 34264, 34735})

_EPS = 1e-9
_BOUNDS_KEYS = ("x", "y", "width", "height")


class SlideError(InputError):
    """A whole-slide image cannot be used as asked."""


class SlideOpenError(SlideError):
    """OpenSlide cannot open the file (and, where tried, GDAL cannot read it either)."""


class SlideMppError(SlideError):
    """The slide has no usable microns-per-pixel metadata for the resolution asked."""


class SlideLevelError(SlideError):
    """The pyramid level asked for does not exist."""


def _openslide() -> ModuleType:
    try:
        import openslide
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise InputError(
            "openslide",
            f"openslide-python is not installed ({err}); pip install "
            "openslide-python openslide-bin",
        ) from err
    return openslide


# -- format detection ------------------------------------------------------------------------


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
    openslide = _openslide()
    try:
        fmt = openslide.OpenSlide.detect_format(str(path))
    except (openslide.OpenSlideError, OSError, ValueError):
        return False
    if fmt is None:
        return False
    if fmt != "generic-tiff":
        return True
    return not _is_geotiff(Path(path))


def _parse_colour(value: str | None) -> tuple[int, int, int] | None:
    if not value:
        return None
    text = value.strip().lstrip("#")
    if len(text) != 6:
        return None
    try:
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    except ValueError:
        return None


def _positive_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


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
        bands: Sequence[int] | None = None,
    ) -> None:
        openslide = _openslide()
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
        if mpp is not None and _positive_float(mpp) is None:
            raise OptionError("--mpp", f"must be a positive number of microns, not {mpp!r}")
        if slide_mpp is not None and _positive_float(slide_mpp) is None:
            raise OptionError(
                "--slide-mpp", f"must be a positive number of microns, not {slide_mpp!r}"
            )
        if not self.path.exists():
            raise InputError(self.name, "no such file")
        try:
            slide = openslide.OpenSlide(str(self.path))
        except (openslide.OpenSlideError, OSError) as err:
            raise SlideOpenError(self.name, f"OpenSlide cannot open it ({err})") from err
        try:
            self._init_from(slide, mpp=mpp, level=level, slide_mpp=slide_mpp, bands=bands)
        finally:
            slide.close()
        self._local = threading.local()

    # -- set-up ------------------------------------------------------------------------------

    def _init_from(
        self,
        slide: Any,
        *,
        mpp: float | None,
        level: int | None,
        slide_mpp: float | None,
        bands: Sequence[int] | None,
    ) -> None:
        props = dict(slide.properties)
        self.vendor: str | None = props.get("openslide.vendor")
        self.level_dimensions: tuple[tuple[int, int], ...] = tuple(
            (int(w), int(h)) for w, h in slide.level_dimensions
        )
        self.level_downsamples: tuple[float, ...] = tuple(float(d) for d in slide.level_downsamples)
        width0, height0 = self.level_dimensions[0]

        # level-0 microns per pixel
        if slide_mpp is not None:
            self.mpp0: tuple[float, float] | None = (float(slide_mpp), float(slide_mpp))
            self.mpp0_origin = "override"
        else:
            mx = _positive_float(props.get("openslide.mpp-x"))
            my = _positive_float(props.get("openslide.mpp-y"))
            if mx is None and my is None:
                self.mpp0 = None
            else:
                self.mpp0 = (mx or my or 0.0, my or mx or 0.0)
            self.mpp0_origin = "metadata" if self.mpp0 is not None else "none"

        # scanned region (level-0 pixels)
        bounds = [_nonnegative_int(props.get(f"openslide.bounds-{k}")) for k in _BOUNDS_KEYS]
        if None not in bounds and (bounds[2] or 0) > 0 and (bounds[3] or 0) > 0:
            bx, by, bw, bh = (int(b or 0) for b in bounds)
            bx, by = min(bx, width0 - 1), min(by, height0 - 1)
            bw, bh = min(bw, width0 - bx), min(bh, height0 - by)
            self.bounds_from_slide = True
        else:
            bx, by, bw, bh = 0, 0, width0, height0
            self.bounds_from_slide = False
        self.bounds: tuple[int, int, int, int] = (bx, by, bw, bh)

        colour = _parse_colour(props.get("openslide.background-color"))
        self.background: tuple[int, int, int] = colour if colour is not None else (255, 255, 255)
        self._background = np.array(self.background, np.float32)[:, None, None]

        if mpp is not None:
            self._setup_mpp(float(mpp))
        else:
            self._setup_level(0 if level is None else level)

        self.bands = select_bands(self.name, 3, bands)
        self._band_index = [b - 1 for b in self.bands]
        self._properties = {k: props[k] for k in SELECTED_PROPERTIES if k in props}

    def _setup_level(self, level: int) -> None:
        count = len(self.level_dimensions)
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
            raise OptionError("--level", f"must be an integer, not {level!r}")
        if not 0 <= level < count:
            raise SlideLevelError(
                self.name, f"has {count} level(s) (0..{count - 1}); --level {level} is out of range"
            )
        level = int(level)
        d = self.level_downsamples[level]
        lw, lh = self.level_dimensions[level]
        bx, by, bw, bh = self.bounds
        ix0 = min(math.floor(bx / d + _EPS), lw - 1)
        iy0 = min(math.floor(by / d + _EPS), lh - 1)
        ix1 = max(min(math.ceil((bx + bw) / d - _EPS), lw), ix0 + 1)
        iy1 = max(min(math.ceil((by + bh) / d - _EPS), lh), iy0 + 1)
        self.level = level
        self.downsample = d
        self.resampled = False
        self._x = Axis(float(ix0), 1.0, lw, d)
        self._y = Axis(float(iy0), 1.0, lh, d)
        self._shape = (3, iy1 - iy0, ix1 - ix0)
        self.level0_affine: tuple[float, float, float, float, float, float] = (
            d,
            0.0,
            ix0 * d,
            0.0,
            d,
            iy0 * d,
        )
        self.mpp: float | None = (
            math.sqrt(self.mpp0[0] * self.mpp0[1]) * d if self.mpp0 is not None else None
        )

    def _setup_mpp(self, target: float) -> None:
        if self.mpp0 is None:
            raise SlideMppError(
                self.name, "has no microns-per-pixel metadata; pass --slide-mpp or --level"
            )
        mx, my = self.mpp0
        if self.mpp0_origin == "metadata" and max(mx, my) > IMPLAUSIBLE_MPP:
            warnings.warn(
                f"{self.name}: level-0 pixel size {max(mx, my):g} µm is implausible for a slide "
                "(a 72/96 dpi default?); pass --slide-mpp to set it",
                TilerunWarning,
                stacklevel=4,
            )
        finer = max(mx, my) / target
        if finer > UPSAMPLE_WARN_FACTOR:
            warnings.warn(
                f"{self.name}: --mpp {target:g} is {finer:.2f}× finer than the slide's level 0 "
                f"({max(mx, my):g} µm); upsampling adds no detail",
                TilerunWarning,
                stacklevel=4,
            )
        limit = target * (1.0 + MPP_TOLERANCE)
        level = 0
        for i, d in enumerate(self.level_downsamples):
            if max(mx, my) * d <= limit and d > self.level_downsamples[level]:
                level = i
        d = self.level_downsamples[level]
        lw, lh = self.level_dimensions[level]
        bx, by, bw, bh = self.bounds
        sx, sy = target / mx, target / my
        width = max(math.floor(bw / sx + 0.5), 1)
        height = max(math.floor(bh / sy + 0.5), 1)
        self.level = level
        self.downsample = d
        self.resampled = True
        self._x = Axis(bx / d, sx / d, lw, d)
        self._y = Axis(by / d, sy / d, lh, d)
        self._shape = (3, height, width)
        self.level0_affine = (sx, 0.0, float(bx), 0.0, sy, float(by))
        self.mpp = target

    # -- Source ------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.bands), self._shape[1], self._shape[2])

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(np.uint8)

    def pixel_size(self) -> tuple[float, str] | None:
        """``(µm per output pixel, "um")``, or None when the slide's mpp is unknown."""
        return (self.mpp, "um") if self.mpp is not None else None

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
            "micron_affine": self._micron_affine(),
            "affine_convention": "output pixel corner (col, row) -> level-0 pixel corner (x, y); "
            "micron_affine: -> microns from the level-0 origin",
            "shape": list(self.shape),
            "background_color": "{:02X}{:02X}{:02X}".format(*self.background),
            "properties": dict(self._properties),
        }

    def _micron_affine(self) -> list[float] | None:
        """``level0_affine`` scaled by level-0 µm per pixel: output pixel corner → microns."""
        if self.mpp0 is None:
            return None
        a, b, c, d, e, f = self.level0_affine
        mx, my = self.mpp0
        return [a * mx, b * mx, c * mx, d * my, e * my, f * my]

    def _slide(self) -> Any:
        slide = getattr(self._local, "slide", None)
        if slide is None:
            openslide = _openslide()
            try:
                slide = openslide.OpenSlide(str(self.path))
            except (openslide.OpenSlideError, OSError) as err:
                raise SlideOpenError(self.name, f"OpenSlide cannot open it ({err})") from err
            self._local.slide = slide
        return slide

    def _read_rgba(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        openslide = _openslide()
        slide = self._slide()
        try:
            image = slide.read_region((x, y), self.level, (width, height))
        except openslide.OpenSlideError as err:
            # an OpenSlide handle stays in error once a read fails: drop this thread's handle
            self._local.slide = None
            raise SlideError(
                self.name,
                f"OpenSlide failed to read level {self.level} at ({x}, {y}) "
                f"size {width}×{height}: {err}",
            ) from err
        return np.asarray(image)

    def _composite(
        self,
        rgba: np.ndarray,
        cover_y: np.ndarray | None = None,
        cover_x: np.ndarray | None = None,
    ) -> np.ndarray:
        """RGBA ``(h, w, 4)`` over the background colour: float32 ``(3, h, w)``. ``cover_*``
        (see :meth:`Axis.coverage`) undo OpenSlide's fading of samples at the level edge."""
        rgb = np.moveaxis(rgba[..., :3], -1, 0).astype(np.float32)
        alpha = rgba[..., 3]
        if alpha.min() == 255:
            return rgb
        a = alpha.astype(np.float32) / np.float32(255)
        if cover_y is not None:
            a /= cover_y.astype(np.float32)[:, None]
        if cover_x is not None:
            a /= cover_x.astype(np.float32)[None, :]
        a = np.minimum(a, 1.0)[None]
        return rgb * a + self._background * (1 - a)

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TilerunWarning)
            small = SlideSource(self.path, mpp=step, slide_mpp=1.0)
        _, h, w = small.shape
        return small.read(Window(0, 0, h, w))[0]

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        _, height, width = self._shape
        if window.is_empty or not Window(0, 0, height, width).contains(window):
            raise ValueError(f"{self.name}: {window} is not inside the {height}×{width} image")
        ux = self._x.positions(window.x, window.width)
        uy = self._y.positions(window.y, window.height)
        lx, sx, nx, exact_x = self._x.read_span(ux)
        ly, sy, ny, exact_y = self._y.read_span(uy)
        if exact_x and exact_y:
            rgba = self._read_rgba(lx, ly, nx, ny)
            if rgba[..., 3].min() == 255:
                pixels = np.ascontiguousarray(np.moveaxis(rgba[..., :3], -1, 0))
            else:
                pixels = _to_uint8(self._composite(rgba))
        else:
            rgba = self._read_rgba(lx, ly, nx, ny)
            image = self._composite(rgba, self._y.coverage(sy, ny), self._x.coverage(sx, nx))
            if not exact_y:
                image = apply_taps(image, 1, *taps(uy, sy, ny, self._y.radius))
            if not exact_x:
                image = apply_taps(image, 2, *taps(ux, sx, nx, self._x.radius))
            pixels = _to_uint8(image)
        if self._band_index != [0, 1, 2]:
            pixels = pixels[self._band_index]
        valid = np.ones(pixels.shape, dtype=bool)
        return pixels, valid

    # -- pickling ----------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TilerunWarning)  # warned when first opened
            self.__init__(state["path"], **state["options"])  # type: ignore[misc]


def _nonnegative_int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def open_slide(
    path: str | Path,
    *,
    mpp: float | None = None,
    level: int | None = None,
    slide_mpp: float | None = None,
    bands: Sequence[int] | None = None,
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
