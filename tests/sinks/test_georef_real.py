"""Real GeoTIFFs in, Zarr out: CRS, affine, coordinates and nodata survive the round trip.

Each file is predicted once (module-scoped) with an identity model, so the output's logits must
be the input's pixels wherever the input is valid and NaN exactly where it is not.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr
from rasterio.crs import CRS

import tilerun
from tilerun.sinks import LABEL_FILL

try:  # `python -m pytest` puts the checkout on sys.path; plain `pytest` puts tests/ there
    from tests.conftest import Identity, shared_file
except ImportError:  # pragma: no cover
    from conftest import Identity, shared_file  # type: ignore[no-redef]

CASES = {
    "RGB.byte": ("geotiff/rasterio/RGB.byte.tif", None),
    "rgb_lzw": ("geotiff/rasterio/rgb_lzw.tif", None),
    "cogeo-3857-jpeg": ("geotiff/rasterio/cogeo.tif", None),
    "world-4326": ("geotiff/rasterio/world.rgb.tif", None),
    "rioxarray-custom-wkt-int16": ("geotiff/rioxarray/cog.tif", None),
    "mapchete-4band-uint16": ("geotiff/mapchete/4band_test.tif", None),
    "mapchete-bands-3-1": ("geotiff/mapchete/4band_test.tif", (3, 1)),
    "float_nan": ("geotiff/rasterio/float_nan.tif", None),
    "cog_nodata_nan": ("geotiff/rio-tiler/cog_nodata_nan.tif", None),
}


class Run:
    """One prediction and the reference read straight from rasterio."""

    def __init__(self, path, bands, out, ds: xr.Dataset) -> None:
        self.path, self.bands, self.out, self.ds = path, bands, out, ds
        with rasterio.open(path) as src:
            self.crs = src.crs
            self.transform = src.transform
            self.height, self.width = src.height, src.width
            chosen = list(bands) if bands else list(range(1, src.count + 1))
            self.pixels = src.read(chosen)
            band_valid = src.read_masks(chosen) > 0
        if self.pixels.dtype.kind == "f":
            band_valid &= np.isfinite(self.pixels)
        self.band_valid = band_valid
        self.valid = band_valid.any(axis=0)


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def run(request, tmp_path_factory) -> Run:
    relative, bands = CASES[request.param]
    path = shared_file(relative)
    out = tmp_path_factory.mktemp("georef") / "out.zarr"
    ds = tilerun.predict(
        path,
        Identity(),
        out,
        tile=64,
        overlap=16,
        chunk=192,
        batch_size=8,
        bands=bands,
        output=("logits", "labels"),
    )
    return Run(path, bands, out, ds)


def test_crs_matches_input(run):
    if run.crs is None:
        assert run.ds.rio.crs is None
        assert "crs_wkt" not in run.ds.spatial_ref.attrs
        return
    assert run.ds.rio.crs == run.crs
    stored = CRS.from_wkt(run.ds.spatial_ref.attrs["crs_wkt"])
    assert stored == run.crs
    if run.crs.to_epsg() is None:  # custom WKT (rioxarray/cog.tif): no EPSG code to hide behind
        assert stored.to_wkt() == run.crs.to_wkt()


def test_transform_matches_input(run):
    assert run.ds.rio.transform().almost_equals(run.transform, precision=1e-9)
    gt = [float(v) for v in run.ds.spatial_ref.attrs["GeoTransform"].split()]
    t = run.transform
    np.testing.assert_allclose(gt, [t.c, t.a, t.b, t.f, t.d, t.e], rtol=1e-12)


def test_coordinates_are_pixel_centres(run):
    ds = run.ds
    assert ds.sizes["y"] == run.height and ds.sizes["x"] == run.width
    t = run.transform
    xs = t.c + (np.arange(run.width) + 0.5) * t.a
    ys = t.f + (np.arange(run.height) + 0.5) * t.e
    np.testing.assert_allclose(ds.x.values, xs, rtol=1e-12, atol=0)
    np.testing.assert_allclose(ds.y.values, ys, rtol=1e-12, atol=0)


def test_every_raster_variable_names_spatial_ref(run):
    ds = run.ds
    assert "spatial_ref" in ds.coords
    assert set(ds.data_vars) == {"logits", "labels"}
    for name in ds.data_vars:
        # decode_coords="all" moves the attribute into .encoding; it must be there either way
        mapping = ds[name].encoding.get("grid_mapping", ds[name].attrs.get("grid_mapping"))
        assert mapping == "spatial_ref", name
    group = zarr.open_group(run.out, mode="r")
    for name in ("logits", "labels"):
        assert group[name].attrs["grid_mapping"] == "spatial_ref"


def test_logits_nan_exactly_where_input_invalid(run):
    logits = run.ds.logits.values
    assert logits.dtype == np.float32
    assert logits.shape == (run.pixels.shape[0], run.height, run.width)
    nan = np.isnan(logits)
    for k in range(logits.shape[0]):
        np.testing.assert_array_equal(nan[k], ~run.valid)


def test_identity_logits_equal_input_pixels_where_valid(run):
    logits = run.ds.logits.values
    # A band that is invalid at a pixel where another band is valid is fed to the model as 0.
    expected = np.where(run.band_valid, run.pixels, 0).astype(np.float32)
    np.testing.assert_allclose(logits[:, run.valid], expected[:, run.valid], rtol=2e-6, atol=1e-7)


def test_labels_fill_exactly_where_input_invalid(run):
    raw = zarr.open_group(run.out, mode="r")["labels"][...]
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(raw == LABEL_FILL, ~run.valid)
    # xarray keeps labels uint8 (categories), and rioxarray names their nodata code
    labels = run.ds.labels
    assert labels.dtype == np.uint8 and labels.rio.nodata == LABEL_FILL
    np.testing.assert_array_equal(labels.values == labels.rio.nodata, ~run.valid)


def test_labels_are_argmax_of_logits_where_clear(run):
    raw = zarr.open_group(run.out, mode="r")["labels"][...]
    expected = np.where(run.band_valid, run.pixels, 0).astype(np.float64)
    if expected.shape[0] == 1:
        want = (expected[0] > 0).astype(np.uint8)
        clear = run.valid
    else:
        want = expected.argmax(axis=0).astype(np.uint8)
        top2 = np.sort(expected, axis=0)[-2:]
        clear = run.valid & (top2[1] - top2[0] > 1e-3 * np.abs(top2[1]) + 1e-6)
    assert clear.any()
    np.testing.assert_array_equal(raw[clear], want[clear])


def test_store_is_complete(run):
    assert run.ds.attrs["tilerun"]["complete"] is True
    assert run.ds.attrs["tilerun"]["input"] == str(run.path)
    expected_bands = list(run.bands) if run.bands else list(range(1, run.pixels.shape[0] + 1))
    assert run.ds.attrs["tilerun"]["bands"] == expected_bands
    assert run.ds.attrs["tilerun"]["valid_pixels"] == int(run.valid.sum())
    assert not run.out.with_name(run.out.name + ".partial").exists()
