"""``crop`` blending equals one whole-image pass over the mirror-padded image.

With a margin at least the network's receptive-field radius, a tile's core does not see the
tile's own zero padding, so stitching cores must give exactly what a single forward pass over
the whole reflect-padded image gives (the same pooling phase, since the stride is a multiple
of the downsampling factor).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tilerun
from tilerun.blending import Blend
from tilerun.engine.plan import ChunkPlan
from tilerun.geometry import make_grid
from tilerun.sources import ArraySource


@pytest.mark.parametrize("chunk", [40, 96, 1000])
def test_crop_equals_whole_image_inference(tmp_path, small_unet, chunk):
    image = np.random.default_rng(3).normal(size=(3, 123, 141)).astype(np.float32)
    tile, overlap = 96, 64  # margin 32 > receptive-field radius of a depth-2 U-Net (~22 px)
    ds = tilerun.predict(
        image,
        small_unet,
        tmp_path / "o.zarr",
        tile=tile,
        overlap=overlap,
        blend="crop",
        chunk=chunk,
        batch_size=2,
    )
    grid = make_grid(123, 141, tile, overlap, small_unet.downsampling)
    padded, _ = ArraySource(image).read_padded(grid.padded_window())
    with torch.inference_mode():
        whole = small_unet(torch.from_numpy(np.ascontiguousarray(padded))[None])[0].numpy()
    m = grid.margin
    expected = whole[:, m : m + 123, m : m + 141]
    np.testing.assert_allclose(ds.logits.values, expected, rtol=0, atol=1e-5)


def test_crop_plan_runs_each_tile_once_and_spills_nothing_when_chunks_align():
    grid = make_grid(1000, 1000, 256, 64, 16)
    plan = ChunkPlan(grid, Blend("crop"), chunk=grid.stride * 3)
    assert plan.tiles_planned == grid.count
    assert all(plan.targets(i, j) == [(i, j)] for i, j in plan.chunks())
