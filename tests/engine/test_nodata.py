"""Nodata pixels are NaN in logits and the fill value in labels; they never poison neighbours."""

from __future__ import annotations

import numpy as np
import xarray as xr

import tilerun
from tilerun.sinks import LABEL_FILL


def test_nan_and_nodata_value_are_masked(tmp_path, small_unet):
    rng = np.random.default_rng(5)
    image = rng.normal(size=(3, 90, 110)).astype(np.float32)
    image[:, 10:20, 30:50] = np.nan
    image[1, 60, 70] = np.nan  # one band only: still invalid there for that band
    ds = tilerun.predict(
        image,
        small_unet,
        tmp_path / "o.zarr",
        tile=32,
        overlap=0.25,
        output=("logits", "labels"),
        chunk=40,
    )
    logits = ds.logits.values
    raw = xr.open_zarr(tmp_path / "o.zarr", mask_and_scale=False).labels.values
    invalid = ~np.isfinite(image).any(axis=0)
    assert np.isnan(logits[:, invalid]).all()
    assert np.isfinite(logits[:, ~invalid]).all()  # NaN inputs never leak into valid pixels
    assert (raw[invalid] == LABEL_FILL).all()
    assert (raw[~invalid] < 3).all()


def test_declared_nodata_value_from_xarray(tmp_path, identity):
    import rioxarray  # noqa: F401

    data = np.arange(2 * 30 * 40, dtype=np.int16).reshape(2, 30, 40)
    data[:, :5, :] = -9999
    da = xr.DataArray(data, dims=("band", "y", "x")).rio.write_nodata(-9999)
    ds = tilerun.predict(da, identity, tmp_path / "o.zarr", tile=16, overlap=4)
    out = ds.logits.values
    assert np.isnan(out[:, :5]).all()
    np.testing.assert_allclose(out[:, 5:], data[:, 5:].astype(np.float32), atol=1e-3)


def test_narrow_gaussian_still_covers_every_pixel(tmp_path, small_unet):
    """A very small sigma must not underflow weights to zero at tile corners."""
    image = np.random.default_rng(2).normal(size=(3, 64, 64)).astype(np.float32)
    ds = tilerun.predict(
        image, small_unet, tmp_path / "o.zarr", tile=32, overlap=0, sigma=0.02, chunk=32
    )
    assert np.isfinite(ds.logits.values).all()
