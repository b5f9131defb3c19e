"""An identity model must reproduce the input at every pixel, whatever the blending and chunking."""

from __future__ import annotations

import numpy as np
import pytest

import tilerun
from tilerun.blending import BLEND_MODES


@pytest.mark.parametrize("blend", BLEND_MODES)
@pytest.mark.parametrize(("chunk", "batch"), [(64, 1), (100, 3), (512, 8)])
def test_identity_reproduces_input(tmp_path, identity, image, blend, chunk, batch):
    ds = tilerun.predict(
        image,
        identity,
        tmp_path / "out.zarr",
        tile=32,
        overlap=0.25,
        blend=blend,
        chunk=chunk,
        batch_size=batch,
    )
    out = ds.logits.values
    assert out.shape == image.shape
    np.testing.assert_allclose(out, image, rtol=0, atol=2e-6)


def test_identity_with_tile_larger_than_image(tmp_path, identity):
    img = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    ds = tilerun.predict(img, identity, tmp_path / "o.zarr", tile=64, overlap=16)
    np.testing.assert_allclose(ds.logits.values, img, atol=1e-5)
    assert ds.attrs["tilerun"]["tiles_run"] == 1


def test_identity_on_single_pixel_row(tmp_path, identity):
    img = np.linspace(0, 1, 40, dtype=np.float32).reshape(1, 1, 40)
    ds = tilerun.predict(img, identity, tmp_path / "o.zarr", tile=16, overlap=0.5, chunk=8)
    np.testing.assert_allclose(ds.logits.values, img, atol=1e-6)
