"""Test-time augmentation inverts its views exactly; autocast keeps float32 accumulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tilerun
from tilerun.engine.tta import VIEWS, averaged
from tilerun.errors import NonFiniteError


@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_identity_with_tta_reproduces_input(tmp_path, identity, image, mode):
    ds = tilerun.predict(image, identity, tmp_path / "o.zarr", tile=32, overlap=8, tta=mode)
    np.testing.assert_allclose(ds.logits.values, image, atol=2e-6)


@pytest.mark.parametrize("mode", ["none", "flips", "d4"])
def test_tta_matches_numpy_reference(mode, asymmetric):
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        got = averaged(asymmetric, x, mode).numpy()
        reference = np.zeros_like(got)
        for view in VIEWS[mode]:
            xv = x.numpy()
            if view.flip_x:
                xv = xv[..., ::-1]
            if view.flip_y:
                xv = xv[..., ::-1, :]
            xv = np.rot90(xv, view.k, axes=(2, 3))
            y = asymmetric(torch.from_numpy(xv.copy())).numpy()
            y = np.rot90(y, -view.k, axes=(2, 3))
            if view.flip_y:
                y = y[..., ::-1, :]
            if view.flip_x:
                y = y[..., ::-1]
            reference += y / len(VIEWS[mode])
    np.testing.assert_allclose(got, reference, atol=1e-5)
    if mode != "none":  # the model is not equivariant, so augmentation changes the output
        plain = asymmetric(x).detach().numpy()
        assert np.abs(got - plain).max() > 1e-3


def test_d4_views_are_distinct_and_invertible():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    outs = {tuple(v.forward(x).flatten().tolist()) for v in VIEWS["d4"]}
    assert len(outs) == 8
    for view in VIEWS["d4"]:
        assert torch.equal(view.inverse(view.forward(x)), x)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_is_close_and_stored_float32(tmp_path, small_unet, image, precision):
    # torch's autocast: OpenVINO may keep a model this small (4 channels) in f32 at any hint
    ref = tilerun.predict(image, small_unet, tmp_path / "a.zarr", tile=48,
                          backend="torch").logits.values
    ds = tilerun.predict(image, small_unet, tmp_path / "b.zarr", tile=48, precision=precision,
                         backend="torch")
    out = ds.logits.values
    assert out.dtype == np.float32
    rel = np.linalg.norm(out - ref) / np.linalg.norm(ref)
    assert 0 < rel < 3e-2


class Exploding(torch.nn.Module):
    downsampling = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x[:, :1].clone()
        y[(x[:, :1] > 3.5)] = float("inf")
        return y


def test_non_finite_logits_are_reported_with_location(tmp_path):
    image = np.zeros((1, 64, 64), np.float32)
    image[0, 40, 50] = 4.0
    with pytest.raises(NonFiniteError, match=r"tiles at \(y, x\)") as err:
        tilerun.predict(image, Exploding(), tmp_path / "o.zarr", tile=32, overlap=0)
    assert "(32, 32)" in str(err.value)
    assert not (tmp_path / "o.zarr").exists()
