"""GeoTIFFSource against rasterio itself, on the real files in ../shared/data and synthetic ones."""

from __future__ import annotations

import math
import pickle
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from rasterio.windows import Window as RioWindow

from tilerun.errors import BandError, InputError, UnsupportedDtypeError
from tilerun.geometry import Window
from tilerun.sources import GeoTIFFSource, open_source

try:  # `python -m pytest` puts the checkout on sys.path; plain `pytest` puts tests/ there
    from tests.conftest import shared_file
except ImportError:  # pragma: no cover
    from conftest import shared_file  # type: ignore[no-redef]

REAL = [
    "geotiff/rasterio/RGB.byte.tif",
    "geotiff/rasterio/rgb_lzw.tif",
    "geotiff/rasterio/cogeo.tif",
    "geotiff/rasterio/world.rgb.tif",
    "geotiff/rasterio/float_nan.tif",
    "geotiff/rasterio/alpha.tif",
    "geotiff/rio-tiler/cog.tif",
    "geotiff/rio-tiler/cog_nodata_nan.tif",
    "geotiff/rioxarray/cog.tif",
    "geotiff/mapchete/4band_test.tif",
]

TRANSFORM = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_200_000.0)


def write_tif(path: Path, data: np.ndarray, *, nodata=None, mask=None, **extra) -> Path:
    """Write ``data`` (bands, h, w) as a georeferenced GeoTIFF; ``mask``: an internal mask."""
    profile = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": str(data.dtype),
        "crs": "EPSG:32633",
        "transform": TRANSFORM,
        "nodata": nodata,
        **extra,
    }
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if mask is not None:
            dst.write_mask(mask)
    return path


def rio_window(w: Window) -> RioWindow:
    return RioWindow(w.x, w.y, w.width, w.height)


def expected_valid(ds, window: Window | None = None, bands=None) -> np.ndarray:
    """What ``valid`` must be: rasterio's mask is non-zero and (for floats) the value is finite."""
    bands = bands or list(range(1, ds.count + 1))
    kwargs = {"window": rio_window(window)} if window is not None else {}
    valid = ds.read_masks(bands, **kwargs) > 0
    pixels = ds.read(bands, **kwargs)
    if pixels.dtype.kind == "f":
        valid &= np.isfinite(pixels)
    return valid


def random_windows(rng: np.random.Generator, height: int, width: int, n: int) -> list[Window]:
    out = []
    for _ in range(n):
        h = int(rng.integers(1, min(height, 200) + 1))
        w = int(rng.integers(1, min(width, 200) + 1))
        y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        out.append(Window(y, x, h, w))
    return out


# -- metadata ------------------------------------------------------------------------------------


@pytest.mark.parametrize("relative", REAL)
def test_metadata_matches_rasterio(relative):
    path = shared_file(relative)
    src = GeoTIFFSource(path)
    with rasterio.open(path) as ds:
        assert src.shape == (ds.count, ds.height, ds.width)
        assert src.dtype == np.dtype(ds.dtypes[0])
        if ds.nodata is None:
            assert src.nodata is None
        elif math.isnan(ds.nodata):
            assert src.nodata is not None and math.isnan(src.nodata)
        else:
            assert src.nodata == ds.nodata
        assert src.georef.transform == tuple(ds.transform)[:6]
        if ds.crs is None:
            assert src.georef.crs_wkt is None
        else:
            assert CRS.from_wkt(src.georef.crs_wkt) == ds.crs
    assert src.name == str(path)


def test_open_source_opens_paths_as_geotiff():
    path = shared_file("geotiff/rasterio/RGB.byte.tif")
    assert isinstance(open_source(path), GeoTIFFSource)
    src = open_source(str(path), bands=[2])
    assert isinstance(src, GeoTIFFSource)
    assert src.shape == (1, 718, 791)


def test_open_source_refuses_bands_for_a_ready_source():
    src = GeoTIFFSource(shared_file("geotiff/rasterio/RGB.byte.tif"))
    assert open_source(src) is src
    with pytest.raises(InputError):
        open_source(src, bands=[1])


# -- reads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("relative", REAL)
def test_read_random_windows_equals_rasterio(relative):
    path = shared_file(relative)
    src = GeoTIFFSource(path)
    rng = np.random.default_rng(zlib.crc32(relative.encode()))
    _, height, width = src.shape
    windows = [Window(0, 0, height, width), *random_windows(rng, height, width, 12)]
    with rasterio.open(path) as ds:
        for window in windows:
            pixels, valid = src.read(window)
            want = ds.read(window=rio_window(window))
            assert pixels.dtype == want.dtype
            assert pixels.shape == (ds.count, window.height, window.width)
            np.testing.assert_array_equal(pixels, want)
            assert valid.dtype == bool
            np.testing.assert_array_equal(valid, expected_valid(ds, window))


def test_to_dask_equals_full_read():
    path = shared_file("geotiff/rasterio/rgb_lzw.tif")
    src = GeoTIFFSource(path)
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(src.to_dask(chunks=300).compute(), ds.read())


@pytest.fixture(scope="module")
def small_raster(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 2-band 7 × 9 int16 raster with nodata, its pixels and its validity."""
    rng = np.random.default_rng(3)
    data = rng.integers(-50, 50, size=(2, 7, 9)).astype(np.int16)
    data[0, 2, 3] = data[1, 5, 8] = data[0, 0, 0] = -99
    path = write_tif(tmp_path_factory.mktemp("small") / "small.tif", data, nodata=-99)
    return path, data, data != -99


def _padded_reference(array: np.ndarray, window: Window) -> np.ndarray:
    _, height, width = array.shape
    before_y, after_y = max(0, -window.y), max(0, window.bottom - height)
    before_x, after_x = max(0, -window.x), max(0, window.right - width)
    padded = np.pad(array, ((0, 0), (before_y, after_y), (before_x, after_x)), mode="reflect")
    y, x = window.y + before_y, window.x + before_x
    return padded[:, y : y + window.height, x : x + window.width]


BORDER_WINDOWS = [
    Window(-3, -4, 7, 9),  # top-left corner
    Window(-3, 2, 5, 12),  # top edge, past left and right
    Window(4, -5, 8, 6),  # left edge, past the bottom
    Window(3, 5, 9, 10),  # bottom-right corner
    Window(-6, -8, 7 + 12, 9 + 16),  # past every border at once, by almost a full image
    Window(-13, -17, 7 + 26, 9 + 34),  # pads longer than the image: repeated reflection
    Window(2, 3, 3, 4),  # inside: a plain read
]


@pytest.mark.parametrize("window", BORDER_WINDOWS, ids=str)
def test_read_padded_equals_numpy_reflect(small_raster, window):
    path, data, valid = small_raster
    src = GeoTIFFSource(path)
    pixels, got_valid = src.read_padded(window)
    np.testing.assert_array_equal(pixels, _padded_reference(data, window))
    np.testing.assert_array_equal(got_valid, _padded_reference(valid, window))
    assert not got_valid.all()  # the nodata pixels are reflected too, so this checks validity


@settings(max_examples=60, deadline=None)
@given(
    y=st.integers(-20, 20),
    x=st.integers(-20, 20),
    h=st.integers(1, 30),
    w=st.integers(1, 30),
)
def test_read_padded_any_window(small_raster, y, x, h, w):
    path, data, valid = small_raster
    window = Window(y, x, h, w)
    pixels, got_valid = GeoTIFFSource(path).read_padded(window)
    np.testing.assert_array_equal(pixels, _padded_reference(data, window))
    np.testing.assert_array_equal(got_valid, _padded_reference(valid, window))


def test_read_padded_single_row_raster(tmp_path):
    data = np.arange(5, dtype=np.uint8).reshape(1, 1, 5)
    path = write_tif(tmp_path / "row.tif", data)
    window = Window(-2, -3, 5, 11)
    pixels, valid = GeoTIFFSource(path).read_padded(window)
    np.testing.assert_array_equal(pixels, _padded_reference(data, window))
    assert valid.all()


# -- bands ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bands", [(1,), (3,), (3, 1), (2, 3, 1), (2, 2)])
def test_band_selection_matches_rasterio(bands):
    path = shared_file("geotiff/rasterio/RGB.byte.tif")
    src = GeoTIFFSource(path, bands=bands)
    assert src.shape == (len(bands), 718, 791)
    window = Window(100, 200, 50, 70)
    pixels, valid = src.read(window)
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(pixels, ds.read(list(bands), window=rio_window(window)))
        np.testing.assert_array_equal(valid, expected_valid(ds, window, list(bands)))


def test_band_selection_four_band_uint16():
    path = shared_file("geotiff/mapchete/4band_test.tif")
    src = GeoTIFFSource(path, bands=[4, 2])
    window = Window(300, 400, 64, 64)
    pixels, _ = src.read(window)
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(pixels, ds.read([4, 2], window=rio_window(window)))


@pytest.mark.parametrize("bands", [(0,), (4,), (1, 5), (-1,), ()])
def test_band_out_of_range_raises_band_error(bands):
    path = shared_file("geotiff/rasterio/RGB.byte.tif")
    with pytest.raises(BandError) as info:
        GeoTIFFSource(path, bands=bands)
    assert str(path) in str(info.value)


# -- pixel types ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "float64"])
def test_supported_dtypes_read_exactly(tmp_path, dtype):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(dtype)
    data = rng.uniform(max(info.min, -1e6), min(info.max, 1e6), size=(2, 20, 30)).astype(dtype)
    path = write_tif(tmp_path / f"{dtype}.tif", data)
    src = GeoTIFFSource(path)
    assert src.dtype == np.dtype(dtype)
    pixels, valid = src.read(Window(3, 4, 10, 20))
    assert pixels.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(pixels, data[:, 3:13, 4:24])
    assert valid.all()


@pytest.mark.parametrize("dtype", ["complex64"])
def test_complex_dtype_is_refused(tmp_path, dtype):
    data = (np.ones((1, 8, 8)) + 1j).astype(dtype)
    path = write_tif(tmp_path / "complex.tif", data)
    with pytest.raises(UnsupportedDtypeError) as info:
        GeoTIFFSource(path)
    assert str(path) in str(info.value)


def test_complex_int16_is_refused(tmp_path):
    path = tmp_path / "cint16.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        count=1,
        height=8,
        width=8,
        dtype="complex_int16",
        crs="EPSG:32633",
        transform=TRANSFORM,
    ):
        pass
    with pytest.raises(UnsupportedDtypeError) as info:
        GeoTIFFSource(path)
    assert str(path) in str(info.value)


# -- validity ------------------------------------------------------------------------------------


def _check_valid_against_rasterio(path: Path) -> np.ndarray:
    src = GeoTIFFSource(path)
    _, height, width = src.shape
    pixels, valid = src.read(Window(0, 0, height, width))
    with rasterio.open(path) as ds:
        masks = ds.read_masks()
        np.testing.assert_array_equal(pixels, ds.read())
    want = masks > 0
    if pixels.dtype.kind == "f":
        want &= np.isfinite(pixels)
    np.testing.assert_array_equal(valid, want)
    return valid


def test_nodata_value_is_invalid(tmp_path):
    data = np.full((3, 12, 15), 10, np.uint8)
    data[:, 0, :] = 7
    data[1, 5, 6] = 7
    path = write_tif(tmp_path / "nodata.tif", data, nodata=7)
    valid = _check_valid_against_rasterio(path)
    np.testing.assert_array_equal(valid, data != 7)


def test_nan_nodata_is_invalid(tmp_path):
    data = np.arange(2 * 6 * 8, dtype=np.float32).reshape(2, 6, 8)
    data[0, 1, 2] = data[1, 4, 7] = np.nan
    path = write_tif(tmp_path / "nan.tif", data, nodata=np.nan)
    assert math.isnan(GeoTIFFSource(path).nodata)
    valid = _check_valid_against_rasterio(path)
    np.testing.assert_array_equal(valid, ~np.isnan(data))


def test_nan_and_inf_are_invalid_even_with_numeric_nodata(tmp_path):
    data = np.arange(1, 6 * 8 + 1, dtype=np.float64).reshape(1, 6, 8)
    data[0, 0, 0] = 0.0
    data[0, 1, 1] = np.nan
    data[0, 2, 2] = np.inf
    path = write_tif(tmp_path / "nan_zero.tif", data, nodata=0.0)
    valid = _check_valid_against_rasterio(path)
    assert not valid[0, 0, 0] and not valid[0, 1, 1] and not valid[0, 2, 2]
    assert valid.sum() == data.size - 3


def test_internal_mask_is_invalid(tmp_path):
    data = np.full((2, 10, 12), 5, np.uint8)
    mask = np.full((10, 12), 255, np.uint8)
    mask[2:5, 3:9] = 0
    mask[9, :] = 0
    path = write_tif(tmp_path / "masked.tif", data, mask=mask)
    with rasterio.open(path) as ds:
        assert all(rasterio.enums.MaskFlags.per_dataset in f for f in ds.mask_flag_enums)
    valid = _check_valid_against_rasterio(path)
    np.testing.assert_array_equal(valid, np.broadcast_to(mask > 0, data.shape))


@pytest.mark.parametrize(
    ("relative", "has_invalid"),
    [
        ("geotiff/rasterio/RGB.byte.tif", True),  # nodata=0 collar
        ("geotiff/rasterio/float_nan.tif", True),  # nodata=NaN
        ("geotiff/rasterio/alpha.tif", True),  # per-dataset mask from an alpha band
        ("geotiff/rioxarray/cog.tif", True),  # nodata=-9999, int16
        ("geotiff/mapchete/4band_test.tif", False),  # nodata=0 declared, but no 0 pixel
        ("geotiff/rasterio/cogeo.tif", False),  # per-dataset mask, all valid; has 0 pixels
        ("geotiff/rasterio/world.rgb.tif", False),  # no nodata: its 0 pixels are valid
    ],
)
def test_real_validity_equals_read_masks(relative, has_invalid):
    valid = _check_valid_against_rasterio(shared_file(relative))
    assert valid.all() != has_invalid


def test_real_nan_is_invalid_although_nodata_is_zero():
    path = shared_file("geotiff/rio-tiler/cog_nodata_nan.tif")
    valid = _check_valid_against_rasterio(path)
    with rasterio.open(path) as ds:
        assert ds.nodata == 0
        pixels, masks = ds.read(), ds.read_masks()
    unmasked_nan = np.isnan(pixels) & (masks > 0)
    assert unmasked_nan.any()  # GDAL's mask alone would call these valid
    assert not valid[unmasked_nan].any()
    assert not valid[pixels == 0].any()


# -- concurrency and pickling ----------------------------------------------------------------------


def test_concurrent_reads_equal_serial_reads():
    path = shared_file("geotiff/rasterio/rgb_lzw.tif")
    src = GeoTIFFSource(path)
    windows = random_windows(np.random.default_rng(11), 718, 791, 64)
    serial = [GeoTIFFSource(path).read(w) for w in windows]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(src.read, windows))
    for (pa, va), (pb, vb) in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(pa, pb)
        np.testing.assert_array_equal(va, vb)


def test_pickle_round_trip_reads_the_same():
    path = shared_file("geotiff/rasterio/RGB.byte.tif")
    src = GeoTIFFSource(path, bands=[3, 1])
    window = Window(300, 250, 40, 60)
    before = src.read(window)  # opens a thread-local handle, which must not be pickled
    clone = pickle.loads(pickle.dumps(src))
    assert clone.shape == src.shape and clone.bands == (3, 1)
    assert clone.georef == src.georef
    after = clone.read(window)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])


# -- errors --------------------------------------------------------------------------------------


def test_missing_file_raises_input_error(tmp_path):
    path = tmp_path / "nope.tif"
    with pytest.raises(InputError) as info:
        GeoTIFFSource(path)
    assert str(path) in str(info.value)


def test_non_raster_file_raises_input_error(tmp_path):
    path = tmp_path / "text.tif"
    path.write_text("this is not a GeoTIFF\n")
    with pytest.raises(InputError) as info:
        GeoTIFFSource(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_directory_raises_input_error(tmp_path):
    with pytest.raises(InputError) as info:
        GeoTIFFSource(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_unopenable_tiff_raises_input_error():
    path = shared_file("wsi/openslide-python/unopenable.tiff")
    with pytest.raises(InputError) as info:
        GeoTIFFSource(path)
    assert str(path) in str(info.value)
