"""Valid-convolution models (output = centre of the input tile) are stitched exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tilerun
from tilerun.errors import OptionError
from tilerun.geometry import make_grid
from tilerun.models import build_unet


class CentreCrop(torch.nn.Module):
    """Identity on the centre: output = input without ``border`` pixels on each side."""

    downsampling = 1

    def __init__(self, border: int) -> None:
        super().__init__()
        self.border = border

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.border
        return x[..., b:-b, b:-b]


@pytest.mark.parametrize("blend", ["gaussian", "crop"])
@pytest.mark.parametrize("chunk", [24, 64, 1000])
def test_centre_crop_identity_reproduces_input(tmp_path, image, blend, chunk):
    ds = tilerun.predict(image, CentreCrop(6), tmp_path / "o.zarr", tile=44, overlap=8,
                         blend=blend, chunk=chunk)
    np.testing.assert_allclose(ds.logits.values, image, atol=2e-6)
    assert ds.attrs["tilerun"]["tiles_run"] == make_grid(150, 170, 44, 8, border=6).count


def test_valid_unet_matches_whole_image_pass(tmp_path):
    """Crop blending of a valid U-Net equals one pass over the reflect-padded image."""
    torch.manual_seed(0)
    unet = build_unet("unet", in_channels=3, classes=2, base=4, depth=2, padding="valid").eval()
    assert unet.border == 20
    image = np.random.default_rng(4).normal(size=(3, 70, 90)).astype(np.float32)
    tile = 92  # a valid input size for depth 2: 92 -> 52
    ds = tilerun.predict(image, unet, tmp_path / "o.zarr", tile=tile, overlap=8, blend="crop",
                         chunk=32)
    grid = make_grid(70, 90, tile, 8, 4, border=20)
    from tilerun.sources import ArraySource

    padded, _ = ArraySource(image).read_padded(grid.padded_window())
    with torch.inference_mode():
        whole = unet(torch.from_numpy(np.ascontiguousarray(padded))[None])[0].numpy()
    m = grid.margin
    np.testing.assert_allclose(ds.logits.values, whole[:, m : m + 70, m : m + 90], atol=1e-5)


def test_tile_too_small_for_border_is_refused():
    with pytest.raises(OptionError, match="border"):
        make_grid(100, 100, 40, 0, 1, border=20)
