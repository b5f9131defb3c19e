"""QuPath GeoJSON of a slide output: level-0 pixel coordinates, QuPath's object properties."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely.geometry
import zarr
from export_fixtures import CLASS_COLOURS, CLASS_NAMES, slide_image, write_slide_output

from tilerun.errors import OptionError
from tilerun.exports import export


@pytest.fixture(scope="module")
def slide_store(tmp_path_factory):
    return write_slide_output(tmp_path_factory.mktemp("slide"), level=1, chunk=32)


def features(path):
    data = json.loads(path.read_text())
    assert data["type"] == "FeatureCollection"
    return data["features"]


def by_class(found):
    out: dict[str, list] = {}
    for f in found:
        out.setdefault(f["properties"]["classification"]["name"], []).append(f)
    return out


def test_level1_output_maps_to_level0_pixels(slide_store, tmp_path):
    record = zarr.open_group(slide_store, mode="r").attrs["tilerun"]
    assert record["slide"]["level_downsample"] == 2.0  # the run used level 1
    path = tmp_path / "objects.geojson"
    summary = export(slide_store, path)
    assert summary.format == "qupath"
    found = by_class(features(path))
    # the rectangles were drawn at level-0 rows 40:100, cols 60:140 (red, class 0) and rows
    # 120:160, cols 20:240 (green, class 1): their outlines come back in level-0 pixels
    red = shapely.geometry.shape(found[CLASS_NAMES[0]][0]["geometry"])
    green = shapely.geometry.shape(found[CLASS_NAMES[1]][0]["geometry"])
    assert red.bounds == (60.0, 40.0, 140.0, 100.0) and red.area == 80 * 60
    assert green.bounds == (20.0, 120.0, 240.0, 160.0)
    blue = shapely.geometry.shape(found[CLASS_NAMES[2]][0]["geometry"])
    height, width = slide_image().shape[:2]
    assert blue.bounds == (0.0, 0.0, float(width), float(height))  # the level-0 extent
    assert len(blue.interiors) == 2 and len(found[CLASS_NAMES[2]]) == 1  # one, across seams


def test_features_carry_qupath_object_type_and_classification(slide_store, tmp_path):
    path = tmp_path / "objects.json"
    export(slide_store, path, object_type="detection")
    for feature in features(path):
        props = feature["properties"]
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
        assert props["objectType"] == "detection"
        k = props["measurements"]["class_id"]
        assert props["classification"]["name"] == CLASS_NAMES[k]
        rgb = [int(CLASS_COLOURS[k][i : i + 2], 16) for i in (1, 3, 5)]
        assert props["classification"]["color"] == rgb
        m = props["measurements"]
        assert m["area_level0_px2"] == m["pixels"] * 4  # one output pixel = 2 × 2 level-0 px
        assert m["area_um2"] == pytest.approx(m["area_level0_px2"] * 0.25)


def test_bounds_origin_subtracts_the_slide_offset(tmp_path):
    store = write_slide_output(tmp_path, level=1, chunk=32)
    group = zarr.open_group(store, mode="r+")
    record = dict(group.attrs["tilerun"])
    slide = dict(record["slide"])
    slide["bounds"] = [6, 4, 256, 192]  # as if the slide had openslide.bounds-x/y = 6, 4
    slide["level0_affine"] = [2.0, 0.0, 6.0, 0.0, 2.0, 4.0]
    record["slide"] = slide
    group.attrs["tilerun"] = record
    export(store, tmp_path / "slide.geojson")
    export(store, tmp_path / "bounds.geojson", origin="bounds")
    shifted = by_class(features(tmp_path / "slide.geojson"))[CLASS_NAMES[0]][0]
    cropped = by_class(features(tmp_path / "bounds.geojson"))[CLASS_NAMES[0]][0]
    assert shapely.geometry.shape(shifted["geometry"]).bounds == (66.0, 44.0, 146.0, 104.0)
    assert shapely.geometry.shape(cropped["geometry"]).bounds == (60.0, 40.0, 140.0, 100.0)


def test_slide_to_gpkg_is_in_level0_pixels_without_crs(slide_store, tmp_path):
    import pyogrio

    path = tmp_path / "slide.gpkg"
    export(slide_store, path)
    assert pyogrio.read_info(path)["crs"] is None
    meta, table = pyogrio.raw.read_arrow(path)
    geometry = shapely.from_wkb(table[meta["geometry_name"]].to_numpy(zero_copy_only=False))
    assert np.max(shapely.bounds(geometry)[:, 2]) == slide_image().shape[1]


def test_bad_qupath_options(slide_store, tmp_path):
    with pytest.raises(OptionError, match="--object-type"):
        export(slide_store, tmp_path / "o.geojson", object_type="cell")
    with pytest.raises(OptionError, match="--origin"):
        export(slide_store, tmp_path / "o.geojson", origin="centre")
