"""Cloud-Optimized GeoTIFF export of one output variable, streamed window by window.

Two passes, neither holding the raster in memory:

1. The variable is copied window by window into a *staging* tiled GeoTIFF beside the target
   (windows are multiples of the tile edge, so every tile is written whole, once; ZSTD level 1:
   fast, and the staging file of a large output stays small).
2. GDAL's COG driver copies the staging file into the final layout: overviews made with the
   resampling fitting the variable (``MODE`` for labels: a category average would invent
   classes; ``AVERAGE`` for probabilities and logits, where nodata is left out), the image
   data after the IFDs, tiles in overview-first order, ``LAYOUT=COG`` in its metadata. GDAL
   builds the overviews from the tiled file block by block, within its block cache.

What is kept: CRS and affine (a slide's frame is level-0 pixels, no CRS); nodata (255 for
labels and probability codes, NaN for logits); per-band class names as band descriptions;
probabilities as their uint8 codes with GDAL scale ``1/254`` and offset 0 (so readers that
apply scale/offset see probabilities); the class colours as the labels' colour table (nodata
transparent).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilerun.classes.colours import rgba_colour
from tilerun.errors import InputError, OptionError, OutputError, first_line
from tilerun.exports.reader import EXPORTABLE, FinishedOutput
from tilerun.exports.target import ExportTarget, remove_with_sidecars
from tilerun.geometry import Window
from tilerun.sinks.layout.codes import LABEL_FILL, PROBABILITY_FILL, PROBABILITY_SCALE
from tilerun.sources.guards import quiet_readers

#: overview resampling per variable (GDAL names)
OVERVIEW_RESAMPLING = {"labels": "MODE", "probabilities": "AVERAGE", "logits": "AVERAGE"}
DEFAULT_BLOCKSIZE = 512
COMPRESSIONS = ("DEFLATE", "ZSTD", "LZW", "NONE")


@dataclass(frozen=True)
class CogOptions:
    """What to export and how: the variable, the tile edge and the compression."""

    variable: str = "labels"
    #: tile edge of the COG and of its overviews (a multiple of 16, as TIFF tiles must be)
    blocksize: int = DEFAULT_BLOCKSIZE
    compress: str = "DEFLATE"

    def __post_init__(self) -> None:
        if self.variable not in EXPORTABLE:
            raise OptionError("--variable", f"choose from {EXPORTABLE}, got {self.variable!r}")
        if self.blocksize < 16 or self.blocksize % 16:
            raise OptionError("--blocksize", f"must be a multiple of 16, got {self.blocksize}")
        if self.compress.upper() not in COMPRESSIONS:
            raise OptionError("compress", f"choose from {COMPRESSIONS}, got {self.compress!r}")


@dataclass(frozen=True)
class CogSummary:
    """What :func:`write_cog` wrote."""

    variable: str
    bands: int
    dtype: str
    overviews: tuple[int, ...]
    resampling: str


@dataclass(frozen=True)
class _Bands:
    """The GeoTIFF bands a variable becomes."""

    count: int
    dtype: str
    nodata: float
    descriptions: tuple[str, ...]
    scale: float | None = None


def write_cog(output: FinishedOutput, target: ExportTarget, options: CogOptions) -> CogSummary:
    """Write ``options.variable`` of ``output`` as a COG at ``target`` (see module docstring)."""
    import rasterio
    import rasterio.shutil
    from rasterio.errors import RasterioError

    bands = _bands(output, options.variable)
    resampling = OVERVIEW_RESAMPLING[options.variable]
    target.check()
    staging = target.temporary("staging-")
    try:
        with target.writing() as temporary:
            try:
                _write_staging(output, options, bands, staging)
                creation = {
                    "BLOCKSIZE": options.blocksize,
                    "COMPRESS": options.compress.upper(),
                    "OVERVIEW_RESAMPLING": resampling,
                    "BIGTIFF": "IF_SAFER",
                }
                if bands.dtype == "float32" and options.compress.upper() != "NONE":
                    creation["PREDICTOR"] = "YES"
                rasterio.shutil.copy(str(staging), str(temporary), driver="COG", **creation)
                with quiet_readers(), rasterio.open(temporary) as cog:  # cut short: warnings
                    overviews = tuple(cog.overviews(1))
            except RasterioError as err:
                raise OutputError(target.path, f"GDAL failed: {first_line(err)}") from err
    finally:
        remove_with_sidecars(staging)
    return CogSummary(options.variable, bands.count, bands.dtype, overviews, resampling)


def _bands(output: FinishedOutput, variable: str) -> _Bands:
    if variable == "labels":
        return _Bands(1, "uint8", LABEL_FILL, ("labels",))
    if not output.has(variable):
        stored = ", ".join(sorted(set(output.group.array_keys()) & set(EXPORTABLE)))
        raise InputError(output.path, f"has no {variable} (it has {stored}); run predict with "
                         f"--write {variable} to export them")
    array = output.group[variable]
    classes = int(array.shape[0])
    names = _band_names(output, classes)
    if variable == "probabilities":
        return _Bands(classes, "uint8", PROBABILITY_FILL, names, 1.0 / PROBABILITY_SCALE)
    return _Bands(classes, "float32", float("nan"), names)


def _band_names(output: FinishedOutput, classes: int) -> tuple[str, ...]:
    """Class names of the class axis (a one-class model's one band is its class)."""
    names = output.class_names
    return names[-1:] if classes == 1 else names[:classes]


def _write_staging(
    output: FinishedOutput, options: CogOptions, bands: _Bands, staging: Any
) -> None:
    """The variable as a tiled GeoTIFF, written in windows that are whole tiles."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.errors import CRSError, NotGeoreferencedWarning

    try:
        crs = CRS.from_user_input(output.crs_wkt) if output.crs_wkt else None
    except CRSError as err:
        raise InputError(output.path, f"its CRS cannot be read ({first_line(err)})") from err
    profile = {
        "driver": "GTiff", "width": output.width, "height": output.height,
        "count": bands.count, "dtype": bands.dtype, "nodata": bands.nodata,
        "crs": crs, "transform": output.frame,
        "tiled": True, "blockxsize": options.blocksize, "blockysize": options.blocksize,
        "compress": "ZSTD", "zstd_level": 1, "bigtiff": "IF_SAFER",
    }  # fmt: skip
    if bands.count > 1:
        profile["interleave"] = "band"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(staging, "w", **profile) as dst:
            for k, description in enumerate(bands.descriptions, start=1):
                dst.set_band_description(k, description)
            if bands.scale is not None:
                dst.scales = (bands.scale,) * bands.count
                dst.offsets = (0.0,) * bands.count
            dst.update_tags(
                TILERUN_VARIABLE=options.variable,
                TILERUN_CLASS_NAMES=json.dumps(list(output.class_names)),
                TILERUN_SOURCE=str(output.path),
            )
            if options.variable == "labels":
                dst.write_colormap(1, _colormap(output))
            for window in output.windows(_step(output, options.blocksize)):
                dst.write(_block(output, options.variable, window, bands),
                          window=_rasterio_window(window))


def _step(output: FinishedOutput, blocksize: int) -> tuple[int, int]:
    """Windows that are whole tiles and about a chunk each (so chunks decode about once)."""
    cy, cx = output.chunks
    return blocksize * max(1, round(cy / blocksize)), blocksize * max(1, round(cx / blocksize))


def _block(output: FinishedOutput, variable: str, window: Window, bands: _Bands) -> np.ndarray:
    if variable == "labels":
        return output.labels(window)[None]
    data = output.read(variable, window)
    return data.astype(bands.dtype, copy=False)


def _rasterio_window(window: Window) -> Any:
    from rasterio.windows import Window as RasterioWindow

    return RasterioWindow(window.x, window.y, window.width, window.height)


def _colormap(output: FinishedOutput) -> dict[int, tuple[int, int, int, int]]:
    """Label value → RGBA: the class colours, nodata transparent."""
    colours: dict[int, tuple[int, int, int, int]] = {}
    for value, colour in enumerate(output.class_colours):
        colours[value] = (*rgba_colour(colour)[:3], 255)
    colours[LABEL_FILL] = (0, 0, 0, 0)
    return colours
