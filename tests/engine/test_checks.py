"""The input is checked against the model spec before any work or output."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import tilerun
from tilerun.errors import BandError, InputError, PixelSizeError, TilerunWarning
from tilerun.models import build_unet, save_package


def _raster(path, pixel: float, dtype: str = "uint8", crs: str = "EPSG:32633", bands: int = 3):
    data = np.random.default_rng(0).integers(0, 200, size=(bands, 40, 40)).astype(dtype)
    with rasterio.open(path, "w", driver="GTiff", height=40, width=40, count=bands, dtype=dtype,
                       crs=crs, transform=from_origin(0, 0, pixel, pixel)) as dst:
        dst.write(data)
    return path


@pytest.fixture
def package(tmp_path):
    unet = build_unet("unet", in_channels=3, classes=2, base=4, depth=2)
    path = tmp_path / "m.safetensors"
    save_package(unet, path, band_names=("red", "green", "blue"), dtype="uint8",
                 scale="dtype_range", pixel_size=10.0, pixel_unit="m", tile=32, overlap=0.25)
    return path


def test_pixel_size_within_tolerance_runs(tmp_path, package):
    ds = tilerun.predict(_raster(tmp_path / "a.tif", 10.5), str(package), tmp_path / "o.zarr")
    assert ds.attrs["tilerun"]["tile"] == 32  # the spec's recommended tile


def test_pixel_size_mismatch_names_the_factor(tmp_path, package):
    src = _raster(tmp_path / "a.tif", 30.0)
    with pytest.raises(PixelSizeError, match=r"3× the model's 10 m") as err:
        tilerun.predict(src, str(package), tmp_path / "o.zarr")
    assert str(src) in str(err.value)
    assert not (tmp_path / "o.zarr").exists() and not (tmp_path / "o.zarr.partial").exists()
    ds = tilerun.predict(src, str(package), tmp_path / "o.zarr", pixel_size_tolerance=2.5)
    assert ds.logits.shape == (2, 40, 40)


def test_degrees_are_compared_in_metres_at_the_centre(tmp_path, package):
    """EPSG:4326 pixels are in degrees: 0.00009° is about 10 m at the equator (runs without a
    warning); 0.001° is about 111 m, which the error says in both units."""
    near = _raster(tmp_path / "near.tif", 0.00009, crs="EPSG:4326")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TilerunWarning)
        tilerun.predict(near, str(package), tmp_path / "near.zarr")
    far = _raster(tmp_path / "far.tif", 0.001, crs="EPSG:4326")
    with pytest.raises(PixelSizeError) as err:
        tilerun.predict(far, str(package), tmp_path / "far.zarr")
    message = str(err.value)
    assert "0.001°×0.001° (about 111 m at the scene's centre) is 11.1× the model's 10 m" \
        in message, message


def test_unknown_pixel_size_warns(tmp_path, package):
    src = tmp_path / "plain.tif"
    data = np.zeros((3, 40, 40), np.uint8)
    with rasterio.open(src, "w", driver="GTiff", height=40, width=40, count=3,
                       dtype="uint8") as dst:  # no CRS, no transform
        dst.write(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tilerun.predict(src, str(package), tmp_path / "o.zarr")
    assert any(issubclass(w.category, TilerunWarning) and "pixel size unknown" in str(w.message)
               for w in caught)


def test_dtype_mismatch_is_refused(tmp_path, package):
    src = _raster(tmp_path / "a.tif", 10.0, dtype="uint16")
    with pytest.raises(InputError, match="pixel type uint16 but the model was trained on uint8"):
        tilerun.predict(src, str(package), tmp_path / "o.zarr")


def test_band_count_names_the_expected_bands(tmp_path, package):
    src = _raster(tmp_path / "a.tif", 10.0, bands=4)
    with pytest.raises(BandError, match=r"takes 3 \(red, green, blue\)"):
        tilerun.predict(src, str(package), tmp_path / "o.zarr")
    ds = tilerun.predict(src, str(package), tmp_path / "o.zarr", bands=(3, 2, 1))
    assert ds.attrs["tilerun"]["bands"] == [3, 2, 1]


def test_dtype_range_scaling_is_applied(tmp_path, identity):
    """``scale = dtype_range`` maps uint8 0…255 to 0…1 before the model."""
    from tilerun.models import ModelSpec, as_model

    data = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    handle = as_model(identity, spec=ModelSpec(scale="dtype_range"))
    out = tilerun.predict(data, handle, tmp_path / "o.zarr", tile=16, overlap=0).logits.values
    np.testing.assert_allclose(out[0], data[0] / 255.0, atol=1e-6)
