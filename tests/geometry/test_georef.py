"""GeoRef: pixel centres and ground sampling distance from a CRS and an affine; it lives in
geometry (below sources and sinks) and is still named by ``tilerun.sources``."""

from __future__ import annotations

import numpy as np
from rasterio.crs import CRS

import tilerun.sources
import tilerun.sources.base
from tilerun.geometry import GeoRef


def test_pixel_centres_sit_half_a_pixel_in():
    georef = GeoRef(None, (10.0, 0.0, 500.0, 0.0, -10.0, 900.0))
    ys, xs = georef.pixel_centres(2, 3)  # type: ignore[misc]
    np.testing.assert_array_equal(ys, [895.0, 885.0])
    np.testing.assert_array_equal(xs, [505.0, 515.0, 525.0])
    assert GeoRef(None, (10.0, 1.0, 500.0, 0.0, -10.0, 900.0)).pixel_centres(2, 3) is None


def test_pixel_size_only_for_a_metric_crs():
    transform = (10.0, 0.0, 500.0, 0.0, -10.0, 900.0)
    assert GeoRef(CRS.from_epsg(32633).to_wkt(), transform).pixel_size() == (10.0, "m")
    assert GeoRef(CRS.from_epsg(4326).to_wkt(), transform).pixel_size() is None
    assert GeoRef(None, transform).pixel_size() is None


def test_the_sources_still_name_it():
    assert tilerun.sources.GeoRef is GeoRef is tilerun.sources.base.GeoRef
