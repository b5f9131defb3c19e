"""ArraySource: numpy, dask and xarray (rioxarray) arrays as sources."""

from __future__ import annotations

import math
import threading

import dask.array as da
import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from tilerun.errors import BandError, InputError, UnsupportedDtypeError
from tilerun.geometry import Window
from tilerun.sources import ArraySource, GeoRef, open_source

try:  # `python -m pytest` puts the checkout on sys.path; plain `pytest` puts tests/ there
    from tests.conftest import shared_file
except ImportError:  # pragma: no cover
    from conftest import shared_file  # type: ignore[no-redef]

WINDOWS = [Window(0, 0, 1, 1), Window(3, 5, 10, 7), Window(0, 0, 20, 30), Window(19, 29, 1, 1)]


def _pad_reference(array: np.ndarray, window: Window) -> np.ndarray:
    _, height, width = array.shape
    by, ay = max(0, -window.y), max(0, window.bottom - height)
    bx, ax = max(0, -window.x), max(0, window.right - width)
    padded = np.pad(array, ((0, 0), (by, ay), (bx, ax)), mode="reflect")
    return padded[
        :,
        window.y + by : window.y + by + window.height,
        window.x + bx : window.x + bx + window.width,
    ]


@pytest.fixture
def cube() -> np.ndarray:
    return np.random.default_rng(5).normal(size=(3, 20, 30)).astype(np.float32)


# -- numpy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_numpy_3d_read_equals_slice(cube, window):
    src = ArraySource(cube)
    assert src.shape == (3, 20, 30)
    assert src.dtype == np.float32
    assert src.georef is None and src.nodata is None
    pixels, valid = src.read(window)
    ys, xs = window.slices()
    np.testing.assert_array_equal(pixels, cube[:, ys, xs])
    assert valid.shape == pixels.shape and valid.all()


def test_numpy_2d_becomes_one_band():
    img = np.arange(6 * 8, dtype=np.uint16).reshape(6, 8)
    src = ArraySource(img)
    assert src.shape == (1, 6, 8)
    pixels, valid = src.read(Window(1, 2, 3, 4))
    np.testing.assert_array_equal(pixels, img[None, 1:4, 2:6])
    assert pixels.dtype == np.uint16 and valid.all()


def test_open_source_wraps_numpy_and_dask(cube):
    assert isinstance(open_source(cube), ArraySource)
    assert isinstance(open_source(da.from_array(cube)), ArraySource)
    assert open_source(cube, bands=[2]).shape == (1, 20, 30)


@pytest.mark.parametrize(
    "window",
    [Window(-4, -6, 12, 15), Window(15, 25, 10, 9), Window(-25, -35, 70, 90), Window(-3, 4, 5, 5)],
    ids=str,
)
def test_read_padded_equals_numpy_reflect(cube, window):
    cube = cube.copy()
    cube[1, 0, 0] = np.nan
    pixels, valid = ArraySource(cube).read_padded(window)
    np.testing.assert_array_equal(pixels, _pad_reference(cube, window))
    np.testing.assert_array_equal(valid, _pad_reference(np.isfinite(cube), window))


def test_nodata_and_non_finite_values_are_invalid():
    img = np.ones((2, 4, 5), np.float64)
    img[0, 0, 0] = -1.0
    img[1, 2, 3] = np.nan
    img[0, 3, 4] = -np.inf
    _, valid = ArraySource(img, nodata=-1.0).read(Window(0, 0, 4, 5))
    expected = np.ones_like(valid)
    expected[0, 0, 0] = expected[1, 2, 3] = expected[0, 3, 4] = False
    np.testing.assert_array_equal(valid, expected)


def test_integer_nodata_is_invalid():
    img = np.arange(20, dtype=np.int16).reshape(1, 4, 5) % 7
    _, valid = ArraySource(img, nodata=0).read(Window(0, 0, 4, 5))
    np.testing.assert_array_equal(valid, img != 0)


def test_nan_nodata_marks_only_nan_invalid():
    img = np.zeros((1, 3, 3), np.float32)
    img[0, 1, 1] = np.nan
    src = ArraySource(img, nodata=float("nan"))
    assert math.isnan(src.nodata)
    _, valid = src.read(Window(0, 0, 3, 3))
    np.testing.assert_array_equal(valid, ~np.isnan(img))


@pytest.mark.parametrize(
    "dtype", ["uint8", "uint16", "int16", "int32", "float32", "float64", "bool"]
)
def test_supported_dtypes(dtype):
    img = (np.arange(2 * 3 * 4) % 2).reshape(2, 3, 4).astype(dtype)
    src = ArraySource(img)
    assert src.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(src.read(Window(0, 0, 3, 4))[0], img)


@pytest.mark.parametrize("dtype", ["complex64", "complex128", "object", "datetime64[s]", "U3"])
def test_unsupported_dtypes_are_refused(dtype):
    with pytest.raises(UnsupportedDtypeError):
        ArraySource(np.zeros((1, 3, 3), dtype=dtype), name="<my array>")


@pytest.mark.parametrize("shape", [(5,), (1, 2, 3, 4)])
def test_wrong_rank_is_refused(shape):
    with pytest.raises(InputError) as info:
        ArraySource(np.zeros(shape, np.float32), name="<my array>")
    assert "<my array>" in str(info.value)


# -- bands ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bands", [(1,), (3, 1), (2, 3, 1), (2, 2)])
def test_band_selection_selects_and_reorders(cube, bands):
    src = ArraySource(cube, bands=bands)
    assert src.shape == (len(bands), 20, 30)
    pixels, _ = src.read(Window(2, 3, 4, 5))
    np.testing.assert_array_equal(pixels, cube[[b - 1 for b in bands], 2:6, 3:8])


@pytest.mark.parametrize("bands", [(0,), (4,), (1, 4), (-1,), ()])
def test_band_out_of_range_raises(cube, bands):
    with pytest.raises(BandError):
        ArraySource(cube, bands=bands)


# -- dask ----------------------------------------------------------------------------------------


class BlockCounter:
    """A dask array whose blocks record that they were computed."""

    def __init__(self, data: np.ndarray, chunks: tuple[int, int, int]) -> None:
        self.data = data
        self.computed: list[tuple[int, ...]] = []
        self._lock = threading.Lock()
        base = da.zeros(data.shape, dtype=data.dtype, chunks=chunks)
        meta = np.empty((0, 0, 0), data.dtype)
        self.array = base.map_blocks(self._block, dtype=data.dtype, meta=meta)

    def _block(self, block: np.ndarray, block_info=None) -> np.ndarray:
        location = block_info[None]["array-location"]
        with self._lock:
            self.computed.append(tuple(block_info[None]["chunk-location"]))
        return self.data[tuple(slice(a, b) for a, b in location)]


def test_dask_read_computes_only_the_blocks_it_needs(cube):
    counter = BlockCounter(cube, chunks=(3, 5, 10))  # 4 × 3 blocks
    src = ArraySource(counter.array)
    assert src.shape == cube.shape and src.dtype == cube.dtype
    assert counter.computed == []  # opening computes nothing
    window = Window(6, 12, 3, 5)  # rows 6-8, cols 12-16: inside block (0, 1, 1)
    pixels, valid = src.read(window)
    np.testing.assert_array_equal(pixels, cube[:, 6:9, 12:17])
    assert isinstance(pixels, np.ndarray) and valid.all()
    assert counter.computed == [(0, 1, 1)]

    counter.computed.clear()
    pixels, _ = src.read(Window(4, 8, 2, 4))  # spans blocks (0,0,0) (0,0,1) (0,1,0) (0,1,1)
    np.testing.assert_array_equal(pixels, cube[:, 4:6, 8:12])
    assert sorted(counter.computed) == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1)]


def test_dask_band_selection_and_padding(cube):
    counter = BlockCounter(cube, chunks=(1, 7, 11))
    src = ArraySource(counter.array, bands=[3, 1])
    window = Window(-3, 24, 9, 10)
    pixels, _ = src.read_padded(window)
    np.testing.assert_array_equal(pixels, _pad_reference(cube[[2, 0]], window))
    # rows -3..5 reflect into block row 0, columns 24..33 into block column 2 (22..29);
    # band 2 is never computed
    assert set(counter.computed) == {(0, 0, 2), (2, 0, 2)}


def test_dask_nan_is_invalid():
    data = np.ones((2, 10, 10), np.float32)
    data[1, 4, 4] = np.nan
    src = ArraySource(da.from_array(data, chunks=(1, 3, 3)), nodata=1.0)
    _, valid = src.read(Window(3, 3, 3, 3))
    assert not valid.any()  # 1.0 is nodata, NaN is never valid
    _, valid = ArraySource(da.from_array(data, chunks=(1, 3, 3))).read(Window(3, 3, 3, 3))
    np.testing.assert_array_equal(valid, np.isfinite(data[:, 3:6, 3:6]))


# -- xarray + rioxarray --------------------------------------------------------------------------

TRANSFORM = Affine(20.0, 0.0, 300_000.0, 0.0, -20.0, 4_000_000.0)


def _data_array(data: np.ndarray, crs="EPSG:32633", nodata=None) -> xr.DataArray:
    _, h, w = data.shape
    xs = TRANSFORM.c + (np.arange(w) + 0.5) * TRANSFORM.a
    ys = TRANSFORM.f + (np.arange(h) + 0.5) * TRANSFORM.e
    arr = xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={"band": np.arange(1, data.shape[0] + 1), "y": ys, "x": xs},
        name="img",
    )
    arr = arr.rio.write_crs(crs).rio.write_transform(TRANSFORM)
    if nodata is not None:
        arr = arr.rio.write_nodata(nodata)
    return arr


def test_xarray_georef_and_nodata_read_back(cube):
    arr = _data_array(cube, nodata=-5.0)
    src = ArraySource.from_xarray(arr)
    assert src.shape == cube.shape
    assert CRS.from_wkt(src.georef.crs_wkt) == CRS.from_epsg(32633)
    assert Affine(*src.georef.transform).almost_equals(TRANSFORM, precision=1e-9)
    assert src.nodata == -5.0
    assert "img" in src.name
    pixels, _ = src.read(Window(1, 2, 3, 4))
    np.testing.assert_array_equal(pixels, cube[:, 1:4, 2:6])


def test_xarray_via_open_source_with_band_selection(cube):
    src = open_source(_data_array(cube), bands=[3, 2])
    assert isinstance(src, ArraySource)
    np.testing.assert_array_equal(src.read(Window(0, 0, 20, 30))[0], cube[[2, 1]])
    with pytest.raises(BandError):
        open_source(_data_array(cube), bands=[4])


def test_xarray_2d_without_crs():
    img = np.arange(5 * 6, dtype=np.int16).reshape(5, 6)
    coords = {"y": np.arange(5) + 0.5, "x": np.arange(6) + 0.5}
    arr = xr.DataArray(img, dims=("y", "x"), coords=coords)
    src = ArraySource.from_xarray(arr)
    assert src.shape == (1, 5, 6)
    assert src.georef is not None and src.georef.crs_wkt is None
    assert src.georef.transform == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    np.testing.assert_array_equal(src.read(Window(0, 0, 5, 6))[0], img[None])


def test_xarray_band_last_transposed(cube):
    arr = _data_array(cube).transpose("band", "x", "y")
    src = ArraySource.from_xarray(arr)
    assert src.shape == cube.shape
    np.testing.assert_array_equal(src.read(Window(2, 3, 4, 5))[0], cube[:, 2:6, 3:8])


def test_rioxarray_open_rasterio_real_file_matches_rasterio():
    path = shared_file("geotiff/rioxarray/cog.tif")
    arr = rioxarray.open_rasterio(path, chunks={"x": 128, "y": 128})  # dask-backed, lazy
    src = ArraySource.from_xarray(arr, bands=[1])
    assert isinstance(arr.data, da.Array)
    window = Window(0, 0, 500, 500)
    pixels, valid = src.read(window)
    with rasterio.open(path) as ds:
        assert src.nodata == ds.nodata
        assert CRS.from_wkt(src.georef.crs_wkt) == ds.crs
        assert Affine(*src.georef.transform).almost_equals(ds.transform, precision=1e-9)
        rio_win = rasterio.windows.Window(window.x, window.y, window.width, window.height)
        np.testing.assert_array_equal(pixels, ds.read(window=rio_win))
        np.testing.assert_array_equal(valid, ds.read_masks(window=rio_win) > 0)
    assert not valid.all()


def test_array_georef_passes_through():
    georef = GeoRef(CRS.from_epsg(4326).to_wkt(), (0.5, 0.0, 10.0, 0.0, -0.5, 50.0))
    src = ArraySource(np.zeros((1, 4, 4), np.uint8), georef=georef)
    assert src.georef == georef
    ys, xs = georef.pixel_centres(4, 4)
    np.testing.assert_allclose(xs, [10.25, 10.75, 11.25, 11.75])
    np.testing.assert_allclose(ys, [49.75, 49.25, 48.75, 48.25])


def test_predict_from_dataarray_keeps_georef(tmp_path, identity, cube):
    import tilerun

    arr = _data_array(cube, crs="EPSG:3035")
    ds = tilerun.predict(arr, identity, tmp_path / "o.zarr", tile=16, overlap=4, chunk=16)
    assert ds.rio.crs == CRS.from_epsg(3035)
    assert ds.rio.transform().almost_equals(TRANSFORM, precision=1e-9)
    np.testing.assert_allclose(ds.logits.values, cube, atol=1e-6)


def test_xarray_band_names_and_undecoded_scale_offset_are_kept():
    """rioxarray leaves ``scale_factor``/``add_offset`` in the attributes when it does not
    decode them, and STAC stackers name bands by a string band coordinate."""
    import rioxarray
    from conftest import shared_file

    from tilerun.sources import open_source

    path = shared_file("geotiff/rio-tiler-pds/S2A_29RKH_20200219_0_L2A/"
                       "S2A_29RKH_20200219_0_L2A_10m_B02-B03-B04-B08_described_scaled.tif")
    data = rioxarray.open_rasterio(path)
    source = open_source(data, ["nir", "red"])
    assert source.band_labels == (("nir",), ("red",))
    assert source.scale_offset is not None and source.scale_offset.scales == (1e-4, 1e-4)
    named = data.assign_coords(band=["blue", "green", "red", "nir"])
    chosen = open_source(named, model_bands=("red", "green", "blue"))
    assert chosen.band_labels == (("red",), ("green",), ("blue",))
    np.testing.assert_array_equal(chosen.read(Window(0, 0, 4, 4))[0],
                                  data.values[[2, 1, 0], :4, :4])
