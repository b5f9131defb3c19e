"""The low-resolution entropy map equals the entropy of the sampled pixels, read chunk by
chunk from logits or from uint8 probabilities."""

from __future__ import annotations

import numpy as np
import zarr

from tilerun.report.entropy_map import entropy_map


def _entropy(z):
    p = np.exp(z - z.max(axis=0))
    p /= p.sum(axis=0)
    return -(p * np.log(p)).sum(axis=0) / np.log(z.shape[0])


def test_map_from_logits_and_probabilities(tmp_path):
    z = (2 * np.random.default_rng(3).normal(size=(3, 50, 70))).astype(np.float32)
    z[:, 40:, :8] = np.nan
    group = zarr.open_group(str(tmp_path / "o.zarr"), mode="w")
    group.create_array("logits", shape=z.shape, dtype="float32", chunks=(3, 16, 16),
                       fill_value=np.nan)[:] = z
    emap = entropy_map(group, "softmax", max_size=20)
    assert emap is not None and emap.step == 4 and emap.variable == "logits"
    sampled = z[:, ::4, ::4].astype(np.float64)
    expected = _entropy(np.nan_to_num(sampled))
    expected[np.isnan(sampled).any(axis=0)] = np.nan
    np.testing.assert_allclose(emap.values, expected, atol=1e-5)

    p = np.exp(z - np.nan_to_num(z).max(axis=0))
    p /= p.sum(axis=0)
    codes = np.where(np.isnan(p), 255, np.round(p * 254)).astype(np.uint8)
    probs = zarr.open_group(str(tmp_path / "p.zarr"), mode="w")
    probs.create_array("probabilities", shape=z.shape, dtype="uint8", chunks=(3, 16, 16),
                       fill_value=255)[:] = codes
    from_codes = entropy_map(probs, "softmax", max_size=20)
    assert from_codes is not None and from_codes.variable == "probabilities"
    np.testing.assert_allclose(from_codes.values, expected, atol=0.03)
    assert np.array_equal(np.isnan(from_codes.values), np.isnan(expected))
