"""The output is a function of (input, model, tile, overlap, blend) only."""

from __future__ import annotations

import numpy as np
import pytest

import tilerun


@pytest.fixture
def reference(tmp_path, small_unet, image):
    ds = tilerun.predict(
        image,
        small_unet,
        tmp_path / "ref.zarr",
        tile=48,
        overlap=0.25,
        chunk=4096,
        batch_size=1,
        threads=1,
        scheduler="sync",
    )
    return ds.logits.values


@pytest.mark.parametrize(
    ("chunk", "batch", "workers"),
    [(32, 1, 1), (50, 5, 2), (64, 8, 4), (100, 3, 3), (171, 16, 2)],
)
def test_chunk_batch_thread_invariance(
    tmp_path, small_unet, image, reference, chunk, batch, workers
):
    ds = tilerun.predict(
        image,
        small_unet,
        tmp_path / "o.zarr",
        tile=48,
        overlap=0.25,
        chunk=chunk,
        batch_size=batch,
        threads=workers,
    )
    out = ds.logits.values
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("chunk", [16, 33, 64, 200, 4096])
def test_no_tile_is_computed_twice(tmp_path, small_unet, image, chunk):
    ds = tilerun.predict(image, small_unet, tmp_path / "o.zarr", tile=48, overlap=0.25, chunk=chunk)
    attrs = ds.attrs["tilerun"]
    assert attrs["tiles_run"] == attrs["tiles_minimum"]


def test_blend_modes_differ_but_agree_roughly(tmp_path, small_unet, image):
    outs = {
        blend: tilerun.predict(
            image, small_unet, tmp_path / f"{blend}.zarr", tile=48, overlap=0.5, blend=blend
        ).logits.values
        for blend in ("gaussian", "crop")
    }
    diff = np.abs(outs["gaussian"] - outs["crop"])
    assert diff.max() > 0  # blending really changes seams
    assert np.median(diff) < 0.1 * np.abs(outs["crop"]).mean() + 1e-3
