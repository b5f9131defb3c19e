"""Third-party segmentation models run through the API like any torch.nn.Module."""

from __future__ import annotations

import numpy as np
import pytest

import tilerun


def test_segmentation_models_pytorch_unet(tmp_path):
    # segmentation_models_pytorch needs torchvision, which has no CPU build on the registries
    # this project installs from (it would pull a CUDA torch), so CI does not install it.
    smp = pytest.importorskip("segmentation_models_pytorch")
    model = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=2).eval()
    image = np.random.default_rng(0).normal(size=(3, 100, 120)).astype(np.float32)
    ds = tilerun.predict(image, model, tmp_path / "o.zarr", tile=64, overlap=0.5)
    assert ds.logits.shape == (2, 100, 120)
    assert np.isfinite(ds.logits.values).all()


def test_any_module_with_its_own_downsampling(tmp_path):
    """A foreign module without a ``downsampling`` attribute gets tiles that are multiples of 32."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down = torch.nn.Conv2d(3, 4, 3, stride=32, padding=1)
            self.up = torch.nn.Upsample(scale_factor=32)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.up(self.down(x))

    image = np.random.default_rng(1).normal(size=(3, 90, 70)).astype(np.float32)
    ds = tilerun.predict(image, Encoder().eval(), tmp_path / "o.zarr", tile=64, overlap=0.5)
    assert ds.attrs["tilerun"]["tile"] == 64 and ds.attrs["tilerun"]["overlap_px"] == 32
    with pytest.raises(tilerun.TilerunError, match="multiple"):
        tilerun.predict(image, Encoder().eval(), tmp_path / "p.zarr", tile=48)
