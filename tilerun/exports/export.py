"""``export(store, file)``: one entry point that picks the format from ``file``'s extension.

* ``.tif``, ``.tiff``: a Cloud-Optimized GeoTIFF of one variable (:mod:`~.cog`);
* ``.gpkg`` (GeoPackage), ``.parquet``/``.geoparquet`` (GeoParquet 1.1), ``.fgb``
  (FlatGeobuf), ``.geojson``/``.json`` (GeoJSON, RFC 7946 in WGS84): the label polygons
  (:mod:`~.vectors`);
* ``.geojson``/``.json`` of a slide output: QuPath GeoJSON in level-0 pixels (:mod:`~.qupath`).

Every check (format, options, the store being a complete tilerun output, the target not
existing unless ``overwrite``) runs before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tilerun.errors import OptionError
from tilerun.exports.cog import DEFAULT_BLOCKSIZE, CogOptions, write_cog
from tilerun.exports.qupath import QupathOptions, write_qupath
from tilerun.exports.reader import open_finished
from tilerun.exports.target import ExportTarget
from tilerun.exports.vectors import write_vectors
from tilerun.extras import require_extra

#: file extension → format name
FORMATS = {
    ".tif": "cog", ".tiff": "cog", ".gpkg": "gpkg", ".parquet": "geoparquet",
    ".geoparquet": "geoparquet", ".fgb": "fgb", ".geojson": "geojson", ".json": "geojson",
}  # fmt: skip
FORMAT_NAMES = {
    "cog": "Cloud-Optimized GeoTIFF", "gpkg": "GeoPackage", "geoparquet": "GeoParquet",
    "fgb": "FlatGeobuf", "geojson": "GeoJSON", "qupath": "QuPath GeoJSON",
}  # fmt: skip


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export` wrote, and a one-line description of it."""

    path: Path
    format: str
    description: str


def export_format(path: Path) -> str:
    """The format of ``path`` by its extension; a one-line error for any other."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(FORMATS)
        raise OptionError(path, f"cannot tell the export format from {path.suffix or 'no'} "
                          f"extension; use one of {known}")
    return kind


def export(
    store: str | Path,
    file: str | Path,
    *,
    variable: str = "labels",
    overwrite: bool = False,
    blocksize: int = DEFAULT_BLOCKSIZE,
    object_type: str = "annotation",
    origin: str = "slide",
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Export the complete tilerun output ``store`` to ``file`` (format by extension).

    ``variable`` (COG only): ``labels``, ``probabilities`` or ``logits``; vector formats
    polygonise the labels. ``blocksize``: the COG's tile edge. ``object_type`` and ``origin``:
    QuPath GeoJSON for slides (see :mod:`tilerun.exports.qupath`). ``progress(k)`` is called
    after each chunk of a vector export is traced.
    """
    path = Path(file)
    kind = export_format(path)
    if kind != "cog":
        require_extra("vector", path)
    cog = CogOptions(variable, blocksize)
    qupath = QupathOptions(object_type, origin)
    if kind != "cog" and variable != "labels":
        raise OptionError("--variable", f"{FORMAT_NAMES[kind]} exports polygonise labels; "
                          f"{variable} can be exported to a .tif")
    output = open_finished(store)
    target = ExportTarget(path, overwrite)
    target.check()
    if kind == "cog":
        summary = write_cog(output, target, cog)
        overviews = ", ".join(str(o) for o in summary.overviews) or "none"
        text = (f"{FORMAT_NAMES[kind]}, {summary.variable}: {summary.bands} band(s) "
                f"{summary.dtype}, overviews {overviews} ({summary.resampling.lower()})")
        return ExportSummary(path, kind, text)
    if kind == "geojson" and output.is_slide:
        written = write_qupath(output, target, qupath, progress)
        text = (f"{FORMAT_NAMES['qupath']}: {written.features} {object_type}s in level-0 "
                f"pixels (origin: {origin})")
        return ExportSummary(path, "qupath", text)
    vectors = write_vectors(output, target, kind, progress)
    crs = _crs_name(vectors.crs, output.is_slide)
    text = f"{FORMAT_NAMES[kind]}: {vectors.features} polygons, {crs}"
    return ExportSummary(path, kind, text)


def _crs_name(crs: str | None, slide: bool) -> str:
    if crs is None:
        return "level-0 slide pixels, no CRS" if slide else "output pixels, no CRS"
    if crs.startswith("EPSG:"):
        return crs
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        epsg = CRS.from_wkt(crs).to_epsg()
    except CRSError:
        epsg = None
    return f"EPSG:{epsg}" if epsg else "the output's CRS"
