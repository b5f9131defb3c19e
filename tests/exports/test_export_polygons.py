"""Chunk-wise polygonisation: pieces joined across seams equal a whole-raster trace."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import shapely.geometry
from affine import Affine
from export_fixtures import NODATA, blobs, memory_output
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rasterio.features import shapes

from tilerun.exports.polygons import regions, to_frame


def reference(labels: np.ndarray) -> list[tuple[int, int, tuple[float, ...]]]:
    """Whole-raster trace (GDAL's polygonizer, 4-connected): (value, pixels, bounds)."""
    out = []
    for shape, value in shapes(labels, mask=labels != NODATA, connectivity=4):
        polygon = shapely.geometry.shape(shape)
        out.append((int(value), round(polygon.area), polygon.bounds))
    return sorted(out)


def traced(labels: np.ndarray, chunks: tuple[int, int]) -> list:
    return list(regions(memory_output(labels, chunks)))


def summary(found: list) -> list[tuple[int, int, tuple[float, ...]]]:
    return sorted((r.value, r.pixels, r.polygon.bounds) for r in found)


def test_u_shape_joined_only_in_a_later_chunk_row_is_one_polygon():
    labels = np.zeros((24, 24), np.uint8)
    labels[2:20, 3:6] = 1    # left arm, chunk column 0
    labels[2:20, 17:20] = 1  # right arm, chunk column 2
    labels[17:20, 3:20] = 1  # the bottom bar joins them, two chunk rows down
    found = traced(labels, (8, 8))
    ones = [r for r in found if r.value == 1]
    assert len(ones) == 1
    polygon = ones[0].polygon
    assert polygon.geom_type == "Polygon" and polygon.is_valid
    assert ones[0].pixels == int((labels == 1).sum()) == round(polygon.area)
    assert summary(found) == reference(labels)


def test_region_with_a_hole_across_four_chunks():
    labels = np.zeros((16, 16), np.uint8)
    labels[3:13, 3:13] = 2
    labels[6:10, 6:10] = 0  # the hole sits on the chunk corner (8, 8)
    found = traced(labels, (8, 8))
    twos = [r for r in found if r.value == 2]
    assert len(twos) == 1
    assert len(twos[0].polygon.interiors) == 1
    assert twos[0].polygon.area == 100 - 16
    # collinear vertices the seams left are gone: a square ring with a square hole
    assert len(twos[0].polygon.exterior.coords) == 5
    assert summary(found) == reference(labels)


def test_diagonal_touch_at_a_chunk_corner_stays_two_polygons():
    labels = np.zeros((8, 8), np.uint8)
    labels[2:4, 2:4] = 1
    labels[4:6, 4:6] = 1  # meets the first only at the corner (4, 4), the chunk corner
    ones = [r for r in traced(labels, (4, 4)) if r.value == 1]
    assert len(ones) == 2


def test_nodata_is_excluded_and_splits_regions():
    labels = np.ones((10, 12), np.uint8)
    labels[:, 6] = NODATA
    found = traced(labels, (4, 4))
    assert sorted(r.pixels for r in found) == [50, 60]
    assert sum(r.pixels for r in found) == int((labels != NODATA).sum())
    assert all(r.value == 1 for r in found) and len(found) == 2


@pytest.mark.parametrize("chunks", [(7, 5), (16, 16), (13, 40)])
def test_random_blobs_equal_the_whole_raster_trace(chunks):
    labels = blobs(40, 37, seed=sum(chunks))
    labels[5:9, 30:] = NODATA
    found = traced(labels, chunks)
    assert summary(found) == reference(labels)
    assert all(r.polygon.is_valid and r.polygon.geom_type == "Polygon" for r in found)
    for value in np.unique(labels[labels != NODATA]):
        assert sum(r.pixels for r in found if r.value == value) == int((labels == value).sum())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=arrays(np.uint8, st.tuples(st.integers(1, 14), st.integers(1, 14)),
                  elements=st.sampled_from([0, 1, 2, NODATA])),
    cy=st.integers(1, 6),
    cx=st.integers(1, 6),
)
def test_any_labels_and_chunking_match_the_whole_raster_trace(labels, cy, cx):
    found = traced(labels, (cy, cx))
    assert summary(found) == reference(labels)


def test_regions_stream_before_the_last_chunk():
    labels = np.zeros((64, 64), np.uint8)
    for y in range(2, 64, 8):
        for x in range(2, 64, 8):
            labels[y : y + 3, x : x + 3] = 1  # small islands inside chunks
    done: list[int] = []
    first_yield_at = None
    for region in regions(memory_output(labels, (16, 16)), progress=done.append):
        if first_yield_at is None and region.value == 1:
            first_yield_at = len(done)
    assert first_yield_at is not None and first_yield_at < 16 // 4


def test_to_frame_applies_the_affine_and_orients_counter_clockwise():
    square = shapely.box(0, 0, 2, 1)
    out = to_frame(np.array([square], dtype=object), Affine(10.0, 0.0, 100.0, 0.0, -10.0, 50.0))[0]
    assert out.bounds == (100.0, 40.0, 120.0, 50.0)
    assert out.exterior.is_ccw
