"""Vector exports of the labels: GeoPackage, FlatGeobuf, GeoJSON (via GDAL, through pyogrio)
and GeoParquet (via pyarrow), all fed one stream of Arrow record batches.

Each feature is one region (:mod:`tilerun.exports.polygons`) with the attributes

* ``class_id``: the label value; ``class_name``: its name (the model's class names);
* ``area``: in the CRS's units² (m² for a metric CRS; level-0 pixels² for a slide), exactly
  ``pixels × pixel area``; for GeoJSON it is computed *before* the reprojection to WGS84;
* ``pixels``: the region's pixel count in the output grid.

Geometries are Polygons (holes included) in the output's CRS, except GeoJSON, which RFC 7946
requires in WGS84 longitude/latitude: GDAL's GeoJSON driver reprojects each feature as it is
written (``RFC7946=YES``), so an output without a CRS cannot be written as GeoJSON.

Nothing is collected: regions are turned into batches of :data:`BATCH_FEATURES` features as
they come, and the writers consume the stream batch by batch (``pyogrio.write_arrow`` reads an
Arrow stream; pyarrow's ``ParquetWriter`` writes one row group per batch).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tilerun.classes.names import class_name
from tilerun.errors import OptionError, OutputError, TilerunError, first_line
from tilerun.exports.polygons import Region, region_batches, to_frame
from tilerun.exports.reader import FinishedOutput
from tilerun.exports.target import ExportTarget

#: features per record batch (and per GeoParquet row group)
#: GDAL driver per vector format
OGR_DRIVERS = {"gpkg": "GPKG", "fgb": "FlatGeobuf", "geojson": "GeoJSON"}
VECTOR_FORMATS = (*OGR_DRIVERS, "geoparquet")
GEOPARQUET_VERSION = "1.1.0"


@dataclass(frozen=True)
class VectorSummary:
    """What :func:`write_vectors` wrote."""

    format: str
    features: int
    crs: str | None


@dataclass
class _Counted:
    """Counts the features streamed and keeps the first error raised while making them (an
    Arrow stream reports a Python exception to GDAL only as a message)."""

    features: int = 0
    error: BaseException | None = None


def write_vectors(
    output: FinishedOutput, target: ExportTarget, kind: str,
    progress: Callable[[int], None] | None = None,
) -> VectorSummary:
    """Polygonise ``output``'s labels into ``target`` as ``kind`` (one of
    :data:`VECTOR_FORMATS`)."""
    if kind not in VECTOR_FORMATS:
        raise OptionError(target.path, f"unknown vector format {kind!r}")
    if kind == "geojson" and output.crs_wkt is None:
        raise OptionError(target.path, "GeoJSON needs WGS84 coordinates, but this output has no "
                          "CRS to reproject from; export to .gpkg, .fgb or .parquet instead")
    counted = _Counted()
    with target.writing() as temporary:
        batches = _counting(_batches(output, progress), counted)
        try:
            if kind == "geoparquet":
                _write_geoparquet(batches, temporary, output.crs_wkt)
            else:
                _write_ogr(batches, temporary, kind, output.crs_wkt, target.path.stem)
        except (TilerunError, KeyboardInterrupt):
            raise
        except Exception as err:  # pyogrio, GDAL and Arrow errors: one line, or ours
            if counted.error is not None:
                raise counted.error from None
            raise OutputError(target.path, f"cannot write {kind}: {first_line(err)}") from err
        if counted.error is not None:
            raise counted.error
    crs = "EPSG:4326" if kind == "geojson" else output.crs_wkt
    return VectorSummary(kind, counted.features, crs)


def schema() -> Any:
    """The Arrow schema of the features: WKB geometry (geoarrow.wkb) and the attributes."""
    import pyarrow as pa

    return pa.schema([
        pa.field("geometry", pa.binary(), metadata={"ARROW:extension:name": "geoarrow.wkb"}),
        pa.field("class_id", pa.int32()),
        pa.field("class_name", pa.string()),
        pa.field("area", pa.float64()),
        pa.field("pixels", pa.int64()),
    ])


def _batches(output: FinishedOutput, progress: Callable[[int], None] | None) -> Iterator[Any]:
    for batch in region_batches(output, progress):
        yield _record_batch(output, batch)


def _record_batch(output: FinishedOutput, batch: list[Region]) -> Any:
    import pyarrow as pa
    import shapely

    polygons = np.array([r.polygon for r in batch], dtype=object)
    geometries = to_frame(polygons, output.frame)
    values = np.array([r.value for r in batch], np.int32)
    pixels = np.array([r.pixels for r in batch], np.int64)
    names = [_name(output, v) for v in values.tolist()]
    return pa.record_batch([
        pa.array(shapely.to_wkb(geometries), pa.binary()),
        pa.array(values, pa.int32()),
        pa.array(names, pa.string()),
        pa.array(pixels * output.pixel_area, pa.float64()),
        pa.array(pixels, pa.int64()),
    ], schema=schema())


def _name(output: FinishedOutput, value: int) -> str:
    return class_name(output.class_names, value)


def _counting(batches: Iterator[Any], counted: _Counted) -> Iterator[Any]:
    try:
        for batch in batches:
            counted.features += batch.num_rows
            yield batch
    except BaseException as err:
        counted.error = err
        raise


def _write_ogr(batches: Iterator[Any], path: Path, kind: str, crs_wkt: str | None,
               layer: str) -> None:
    import pyarrow as pa
    import pyogrio.raw

    reader = pa.RecordBatchReader.from_batches(schema(), batches)
    options = {"RFC7946": "YES"} if kind == "geojson" else {}
    with warnings.catch_warnings():
        # a slide's (or an array's) frame has no CRS on purpose: pyogrio need not warn
        warnings.filterwarnings("ignore", message="'crs' was not provided")
        pyogrio.raw.write_arrow(
            reader, str(path), layer=layer, driver=OGR_DRIVERS[kind], geometry_name="geometry",
            geometry_type="Polygon", crs=crs_wkt, layer_options=options,
        )


def _write_geoparquet(batches: Iterator[Any], path: Path, crs_wkt: str | None) -> None:
    """GeoParquet 1.1: WKB geometry, the ``geo`` file metadata with the CRS as PROJJSON
    (``null`` when the output has none: GeoParquet reads a *missing* ``crs`` as WGS84)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    crs: Any = None
    if crs_wkt is not None:
        from pyproj import CRS

        crs = CRS.from_wkt(crs_wkt).to_json_dict()
    geo = {
        "version": GEOPARQUET_VERSION,
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"], "crs": crs,
                                 "edges": "planar", "orientation": "counterclockwise"}},
    }
    base = schema()
    plain = pa.schema([pa.field(f.name, f.type) for f in base],
                      metadata={b"geo": json.dumps(geo).encode()})
    with pq.ParquetWriter(str(path), plain, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(pa.record_batch(batch.columns, schema=plain))
