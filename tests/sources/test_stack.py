"""Per-band files of one scene as one source: the finest grid, coarser bands resampled lazily."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import rasterio
from conftest import shared_file
from rasterio.enums import Resampling
from rasterio.warp import reproject

from tilerun.errors import BandError, OptionError
from tilerun.geometry import Window
from tilerun.sources import BandFile, StackSource, open_source

S2 = "geotiff/rio-tiler-pds/S2A_29RKH_20200219_0_L2A/"


def _files(*names: str) -> list[str]:
    return [str(shared_file(f"{S2}{name}.tif")) for name in names]


def _on_grid(coarse: str, fine: str, method: str) -> np.ndarray:
    """A whole band resampled onto another file's grid at once, as a user would by hand."""
    with rasterio.open(coarse) as src, rasterio.open(fine) as ref:
        out = np.zeros((ref.height, ref.width), src.dtypes[0])
        reproject(src.read(1), out, src_transform=src.transform, src_crs=src.crs,
                  dst_transform=ref.transform, dst_crs=ref.crs, src_nodata=src.nodata,
                  resampling=Resampling[method])
    return out


def test_stack_takes_the_finest_grid_and_file_names_name_the_bands():
    stack = open_source(_files("B8A", "B02", "B11"))
    assert isinstance(stack, StackSource)
    assert stack.shape == (3, 320, 320) and stack.dtype == np.uint16
    assert stack.georef.transform[0] == 100.0  # B02's 100 m, not B8A's 200 m (listed first)
    assert stack.band_labels == (("B8A",), ("B02",), ("B11",))
    assert stack.nodata == 0.0 and stack.scale_offset is None


def test_nearest_reads_each_coarse_pixel_twice_and_fine_bands_as_stored():
    b02, b11 = _files("B02", "B11")
    stack = StackSource([BandFile(b02), BandFile(b11)])
    window = Window(37, 11, 50, 41)  # odd offsets: not aligned to the 2:1 grid
    pixels, valid = stack.read(window)
    with rasterio.open(b02) as a, rasterio.open(b11) as b:
        fine, coarse = a.read(1), b.read(1)
    assert valid.all()
    np.testing.assert_array_equal(pixels[0], fine[37:87, 11:52])
    doubled = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(pixels[1], doubled[37:87, 11:52])


@pytest.mark.parametrize("method", ["bilinear", "cubic", "average"])
def test_windows_resample_as_the_whole_band_does(method):
    b02, b12 = _files("B02", "B12")
    stack = StackSource([BandFile(b02), BandFile(b12)], resampling=method)
    whole = _on_grid(b12, b02, method)
    pixels, _ = stack.read(Window(64, 128, 96, 80))
    np.testing.assert_array_equal(pixels[1], whole[64:160, 128:208])  # window = whole band's
    if method != "average":  # upsampled, an average of one source pixel is nearest
        with rasterio.open(b12) as src:
            doubled = np.repeat(np.repeat(src.read(1), 2, 0), 2, 1)
        assert not np.array_equal(pixels[1], doubled[64:160, 128:208])


def test_band_selection_by_name_and_catalogue_values():
    files = _files("B02", "B03", "B04", "B08", "B11")
    stack = open_source(files, ["swir16", "red", "nir"])
    assert stack.band_labels == (("B11",), ("B04",), ("B08",))
    given = StackSource([BandFile(files[0], labels=("blue",), scale=1e-4, offset=-0.1,
                                  nodata=477)])
    assert given.scale_offset is not None and given.scale_offset.offsets == (-0.1,)
    assert given.scale_offset.origin == "STAC raster:bands"
    pixels, valid = given.read(Window(0, 0, 320, 320))
    np.testing.assert_array_equal(valid[0], pixels[0] != 477)
    assert not valid.all()
    with pytest.raises(BandError, match="no band named 'coastal'"):
        open_source(files, ["coastal"])


def test_mixed_pixel_types_widen_and_the_stack_pickles():
    b02, scl = _files("B02", "SCL")
    stack = StackSource([BandFile(scl), BandFile(b02)], resampling="mode")
    assert stack.dtype == np.uint16
    again = pickle.loads(pickle.dumps(stack))
    window = Window(5, 7, 30, 20)
    for a, b in zip(stack.read(window), again.read(window), strict=True):
        np.testing.assert_array_equal(a, b)
    with rasterio.open(scl) as src:
        np.testing.assert_array_equal(stack.read(window)[0][0],
                                      np.repeat(np.repeat(src.read(1), 2, 0), 2, 1)[5:35, 7:27])


def test_unknown_resampling_is_an_option_error():
    with pytest.raises(OptionError, match="--resampling"):
        StackSource([BandFile(_files("B02")[0])], resampling="lanczos9")


def test_nearest_gather_matches_gdal_on_an_odd_shifted_grid(tmp_path):
    """Coarse pixels 2.5× the fine ones, shifted by 7 m, covering part of the fine grid: the
    fast nearest gather picks what GDAL's warper picks, and outside the coarse band is nodata."""
    from rasterio.transform import from_origin

    fine, coarse = tmp_path / "fine.tif", tmp_path / "coarse.tif"
    common = dict(driver="GTiff", count=1, dtype="uint16", crs="EPSG:32633", nodata=0)
    with rasterio.open(fine, "w", width=64, height=64, transform=from_origin(0, 640, 10, 10),
                       **common) as dst:
        dst.write(np.ones((1, 64, 64), np.uint16))
    values = np.arange(1, 20 * 20 + 1, dtype=np.uint16).reshape(1, 20, 20)
    with rasterio.open(coarse, "w", width=20, height=20,
                       transform=from_origin(107, 633, 25, 25), **common) as dst:
        dst.write(values)
    stack = StackSource([BandFile(str(fine)), BandFile(str(coarse))])
    assert stack._gather[1]
    pixels, valid = stack.read(Window(3, 5, 50, 57))
    expected = _on_grid(str(coarse), str(fine), "nearest")[3:53, 5:62]
    np.testing.assert_array_equal(valid[1], expected > 0)
    np.testing.assert_array_equal(pixels[1][valid[1]], expected[expected > 0])
    assert 0 < valid[1].mean() < 1
