"""Vector exports: CRS, one polygon per region across seams, exact areas, GeoJSON in WGS84."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pyogrio
import pyogrio.raw
import pytest
import shapely
from export_fixtures import CLASS_NAMES, NODATA, ORIGIN, PIXEL, write_output
from pyproj import CRS

from tilerun.exports import export

CHUNK = 32


def scene_labels() -> np.ndarray:
    """Class 1: a ring crossing four chunk seams (a hole of class 2 inside); class 0 around;
    an island of class 2 within one chunk; a nodata corner."""
    labels = np.zeros((80, 96), np.uint8)
    labels[10:60, 20:70] = 1
    labels[25:45, 35:55] = 2  # the hole, on the chunk corner (32, 32)
    labels[66:72, 80:88] = 2  # inside chunk (2, 2)
    labels[:8, :8] = NODATA
    return labels


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_output(tmp_path_factory.mktemp("vectors"), scene_labels(), chunk=CHUNK)


def read(path):
    meta, table = pyogrio.raw.read_arrow(path)
    column = meta["geometry_name"] or "wkb_geometry"
    geometry = shapely.from_wkb(table[column].to_numpy(zero_copy_only=False))
    return table.to_pydict(), geometry


@pytest.mark.parametrize("name", ["regions.gpkg", "regions.fgb"])
def test_ogr_formats_keep_crs_regions_and_exact_areas(store, tmp_path, name):
    path = tmp_path / name
    export(store, path)
    info = pyogrio.read_info(path)
    assert CRS.from_user_input(info["crs"]).to_epsg() == 32633
    assert info["geometry_type"] == "Polygon"
    attrs, geometry = read(path)
    check_regions(attrs, geometry)


def test_geoparquet_has_geo_metadata_and_regions(store, tmp_path):
    path = tmp_path / "regions.parquet"
    export(store, path)
    table = pq.read_table(path)
    geo = json.loads(table.schema.metadata[b"geo"])
    column = geo["columns"][geo["primary_column"]]
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Polygon"]
    assert CRS.from_json_dict(column["crs"]).to_epsg() == 32633
    geometry = shapely.from_wkb(table["geometry"].to_numpy(zero_copy_only=False))
    check_regions(table.to_pydict(), geometry)


def check_regions(attrs, geometry):
    labels = scene_labels()
    pixel_area = PIXEL * PIXEL
    # one polygon per region: background (one, around the ring), the ring, the hole, the island
    assert sorted(attrs["class_id"]) == [0, 1, 2, 2]
    assert all(CLASS_NAMES[k] == n for k, n in zip(attrs["class_id"], attrs["class_name"],
                                                     strict=True))
    assert shapely.is_valid(geometry).all()
    for value in (0, 1, 2):
        mine = [i for i, k in enumerate(attrs["class_id"]) if k == value]
        expected = int((labels == value).sum()) * pixel_area
        assert sum(attrs["area"][i] for i in mine) == pytest.approx(expected, rel=1e-12)
        assert sum(shapely.area(geometry[i]) for i in mine) == pytest.approx(expected, rel=1e-9)
    ring = geometry[attrs["class_id"].index(1)]
    assert len(ring.interiors) == 1
    west, north = ORIGIN
    assert ring.bounds == pytest.approx((west + 200, north - 600, west + 700, north - 100))


def test_geojson_is_wgs84_with_areas_from_before_reprojection(store, tmp_path):
    from rasterio.warp import transform_bounds

    path = tmp_path / "regions.geojson"
    export(store, path)
    data = json.loads(path.read_text())
    assert "crs" not in data  # RFC 7946: WGS84 longitude/latitude, no crs member
    assert CRS.from_user_input(pyogrio.read_info(path)["crs"]).to_epsg() == 4326
    west, north = ORIGIN
    bounds = transform_bounds("EPSG:32633", "EPSG:4326", west, north - 800, west + 960, north)
    lons = [p[0] for f in data["features"] for p in f["geometry"]["coordinates"][0]]
    lats = [p[1] for f in data["features"] for p in f["geometry"]["coordinates"][0]]
    assert bounds[0] - 1e-6 <= min(lons) and max(lons) <= bounds[2] + 1e-6
    assert bounds[1] - 1e-6 <= min(lats) and max(lats) <= bounds[3] + 1e-6
    areas = {f["properties"]["class_id"]: 0.0 for f in data["features"]}
    for f in data["features"]:
        areas[f["properties"]["class_id"]] += f["properties"]["area"]
    assert areas[1] == pytest.approx(int((scene_labels() == 1).sum()) * PIXEL * PIXEL)


def test_labels_from_logits_when_the_store_has_no_labels(tmp_path):
    labels = scene_labels()
    store = write_output(tmp_path, labels, chunk=CHUNK, output=("logits",))
    export(store, tmp_path / "r.gpkg")
    attrs, geometry = read(tmp_path / "r.gpkg")
    check_regions(attrs, geometry)
