from __future__ import annotations

import pytest
import torch

from tilerun.errors import ModelError
from tilerun.models import build_unet


def test_original_configuration_has_31m_parameters():
    model = build_unet("unet-original", in_channels=1, classes=2)
    n = sum(p.numel() for p in model.parameters())
    assert 30.9e6 < n < 31.1e6
    assert model.downsampling == 16
    widths = [enc[0].out_channels for enc in model.encoders]
    assert widths == [64, 128, 256, 512, 1024]


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_shapes(upsampling, batch_norm):
    model = build_unet(
        "unet",
        in_channels=5,
        classes=3,
        base=4,
        depth=3,
        batch_norm=batch_norm,
        upsampling=upsampling,
    ).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 5, 40, 48))
    assert out.shape == (2, 3, 40, 48)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == batch_norm


def test_bad_config_is_refused():
    with pytest.raises(ModelError, match="upsampling"):
        build_unet("unet", upsampling="nearest")
    with pytest.raises(ModelError, match="unknown architecture"):
        build_unet("resnet")
