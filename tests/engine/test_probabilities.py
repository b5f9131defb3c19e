"""The ``probabilities`` output: uint8 softmax/sigmoid probabilities computed in the write task.

Stored as ``round(p * 254)`` with 255 for nodata and CF ``scale_factor``/``_FillValue``, so
xarray decodes them to floats within 1/508 of the exact probability
(see tilerun.sinks.layout.variables).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
import zarr
from conftest import Asymmetric

import tilerun
from tilerun.engine import partial
from tilerun.engine.partial import probabilities_from_logits
from tilerun.errors import OutputError
from tilerun.models import as_model
from tilerun.sinks import PROBABILITY_FILL, PROBABILITY_SCALE

STEP = 1 / 508  # half of one code step: the most a decoded probability may be off
EPS = 1e-6  # float rounding on top of that


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    e = np.exp(z - z.max(axis=0))
    return e / e.sum(axis=0)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-logits.astype(np.float64)))


def raw(path) -> xr.Dataset:
    return xr.open_zarr(path, mask_and_scale=False)


def test_decoded_probabilities_are_the_softmax_of_the_written_logits(tmp_path, small_unet, image):
    ds = tilerun.predict(
        image, small_unet, tmp_path / "o.zarr", tile=32, chunk=64,
        output=("logits", "labels", "probabilities"),
    )  # fmt: skip
    logits, p = ds.logits.values, ds.probabilities.values
    assert p.shape == logits.shape == (3, 150, 170)
    assert ds.probabilities.dims == ("class", "y", "x")
    assert ds.probabilities.attrs["activation"] == "softmax"
    expected = softmax(logits)
    assert np.abs(p - expected).max() <= STEP + EPS
    assert np.abs(p.sum(axis=0) - 1).max() <= 3 * STEP + EPS
    assert p.min() >= 0 and p.max() <= 1
    codes = raw(tmp_path / "o.zarr").probabilities.values
    assert codes.dtype == np.uint8 and codes.max() <= PROBABILITY_SCALE  # no nodata here
    np.testing.assert_allclose(p, codes / PROBABILITY_SCALE, rtol=0, atol=1e-12)  # code / 254
    # The most probable class is the label, wherever the top two are clearly apart.
    top2 = np.sort(expected, axis=0)[-2:]
    clear = top2[1] - top2[0] > 2 * STEP
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(p.argmax(axis=0)[clear], ds.labels.values[clear])


def _nan_image(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = image.copy()
    image[:, 10:20, 30:50] = np.nan
    image[:, 140:, :] = np.nan
    return image, ~np.isfinite(image).any(axis=0)


def _nodata_value_image(image: np.ndarray) -> tuple[xr.DataArray, np.ndarray]:
    import rioxarray  # noqa: F401

    data = image.copy()
    data[:, :7, 100:] = -9999
    array = xr.DataArray(data, dims=("band", "y", "x")).rio.write_nodata(-9999)
    return array, (data == -9999).all(axis=0)


@pytest.mark.parametrize("make", [_nan_image, _nodata_value_image], ids=["nan", "nodata-value"])
def test_nodata_is_stored_as_255_and_decodes_to_nan(tmp_path, small_unet, image, make):
    source, invalid = make(image)
    assert 0 < invalid.sum() < invalid.size
    ds = tilerun.predict(
        source, small_unet, tmp_path / "o.zarr", tile=32, chunk=64,
        output=("logits", "probabilities"),
    )  # fmt: skip
    codes = raw(tmp_path / "o.zarr").probabilities.values
    assert (codes[:, invalid] == PROBABILITY_FILL).all()
    assert (codes[:, ~invalid] <= PROBABILITY_SCALE).all()
    p = ds.probabilities.values
    assert np.isnan(p[:, invalid]).all()
    assert np.isfinite(p[:, ~invalid]).all()
    assert np.isnan(ds.logits.values[:, invalid]).all()  # the same pixels as the logits


def test_labels_and_probabilities_without_logits(tmp_path, small_unet, image):
    full = tilerun.predict(
        image, small_unet, tmp_path / "full.zarr", tile=32, chunk=64,
        output=("logits", "labels", "probabilities"),
    )  # fmt: skip
    ds = tilerun.predict(
        image, small_unet, tmp_path / "o.zarr", tile=32, chunk=64,
        output=("labels", "probabilities"),
    )  # fmt: skip
    assert set(ds.data_vars) == {"labels", "probabilities"}
    assert "logits" not in zarr.open_group(tmp_path / "o.zarr", mode="r").array_keys()
    assert not (tmp_path / "o.zarr" / "logits").exists()
    # Computing them without writing logits changes nothing.
    np.testing.assert_array_equal(
        raw(tmp_path / "o.zarr").probabilities.values,
        raw(tmp_path / "full.zarr").probabilities.values,
    )
    np.testing.assert_array_equal(ds.labels.values, full.labels.values)


def test_probabilities_alone(tmp_path, small_unet, image):
    ds = tilerun.predict(image, small_unet, tmp_path / "o.zarr", tile=32, chunk=64,
                         output="probabilities")
    assert set(ds.data_vars) == {"probabilities"}
    assert np.abs(ds.probabilities.values.sum(axis=0) - 1).max() <= 3 * STEP + EPS


def test_one_class_model_gets_the_sigmoid(tmp_path, image):
    model = Asymmetric(bands=3, classes=1).eval()  # its logits spread over about ±10
    ds = tilerun.predict(image, model, tmp_path / "o.zarr", tile=32, chunk=64,
                         output=("logits", "labels", "probabilities"))
    logits, p = ds.logits.values, ds.probabilities.values
    assert p.shape == (1, 150, 170)
    assert ds.probabilities.attrs["activation"] == "sigmoid"
    assert np.abs(p - sigmoid(logits)).max() <= STEP + EPS
    assert p.min() < 0.1 and p.max() > 0.9  # not the constant 1 of a softmax over one class
    clear = np.abs(logits[0]) > 0.02
    np.testing.assert_array_equal((p[0] > 0.5)[clear], ds.labels.values[clear] == 1)


def test_sigmoid_model_gets_a_sigmoid_per_class(tmp_path, small_unet, image):
    handle = as_model(small_unet, activation="sigmoid")
    ds = tilerun.predict(image, handle, tmp_path / "o.zarr", tile=32, chunk=64,
                         output=("logits", "probabilities"))
    logits, p = ds.logits.values, ds.probabilities.values
    assert ds.probabilities.attrs["activation"] == "sigmoid"
    assert ds.attrs["tilerun"]["activation"] == "sigmoid"
    assert np.abs(p - sigmoid(logits)).max() <= STEP + EPS
    assert np.abs(p.sum(axis=0) - 1).max() > 0.1  # multi-label: not a softmax


def test_model_without_activation_is_refused_before_writing(tmp_path, small_unet, image):
    handle = as_model(small_unet, activation="none")
    with pytest.raises(OutputError, match="activation"):
        tilerun.predict(image, handle, tmp_path / "o.zarr", tile=32, output="probabilities")
    assert not (tmp_path / "o.zarr").exists()
    assert not (tmp_path / "o.zarr.partial").exists()


def test_probability_pyramid_beside_the_probabilities_variable(tmp_path, small_unet, image):
    """The NGFF pyramid (float, from logits) moves aside for the variable of the same name."""
    ds = tilerun.predict(
        image, small_unet, tmp_path / "o.zarr", tile=32, chunk=64,
        output=("labels", "probabilities"), pyramid="labels,probabilities",
    )  # fmt: skip
    group = zarr.open_group(tmp_path / "o.zarr", mode="r")
    assert group["probabilities"].dtype == np.uint8
    level0 = np.asarray(group["probabilities_pyramid"]["0"][:])
    np.testing.assert_allclose(level0, ds.probabilities.values, atol=STEP + EPS)
    assert "logits" in ds  # the pyramid's source


# -- the encoding function itself --------------------------------------------------------------


def test_extreme_logits_give_exact_codes_without_warnings():
    logits = np.array([[[1000.0, -1000.0, 0.0, 88.0]], [[-1000.0, 1000.0, 0.0, -88.0]]],
                      np.float32)  # (2 classes, 1, 4)
    valid = np.ones((1, 4), bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        soft = probabilities_from_logits(logits, valid, "softmax", 254, 255)
        sig = probabilities_from_logits(logits, valid, "sigmoid", 254, 255)
    np.testing.assert_array_equal(soft[:, 0], [[254, 0, 127, 254], [0, 254, 127, 0]])
    np.testing.assert_array_equal(sig[:, 0], [[254, 0, 127, 254], [0, 254, 127, 0]])


def test_codes_match_a_float64_reference_across_row_blocks(monkeypatch):
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 4, (5, 37, 23)).astype(np.float32)
    valid = rng.random((37, 23)) > 0.1
    logits[:, ~valid] = np.nan
    whole = probabilities_from_logits(logits, valid, "softmax", 254, 255)
    monkeypatch.setattr(partial, "PROBABILITY_BLOCK_BYTES", 5 * 23 * 4 * 4)  # 4 rows a block
    before = logits.copy()
    blocked = probabilities_from_logits(logits, valid, "softmax", 254, 255)
    np.testing.assert_array_equal(logits, before)  # the logits are not touched
    np.testing.assert_array_equal(blocked, whole)
    assert (whole[:, ~valid] == 255).all()
    reference = softmax(np.where(valid, logits, 0))
    assert np.abs(whole / 254 - reference)[:, valid].max() <= STEP + EPS
    blocked_sig = probabilities_from_logits(logits, valid, "sigmoid", 254, 255)
    reference = sigmoid(np.where(valid, logits, 0))
    assert np.abs(blocked_sig / 254 - reference)[:, valid].max() <= STEP + EPS
