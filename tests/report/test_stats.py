"""Streaming statistics equal numpy's on the same pixels: input sums and fixed-bin histograms
(also summed in parts), output label counts, entropy and confidence."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from tilerun.classes.labels import labels_from_logits
from tilerun.report.collect import ChunkStats
from tilerun.report.inputs import InputStats, input_bins, observe_input
from tilerun.report.lattice import STRIDE
from tilerun.report.outputs import ENTROPY_BINS, observe_output


def _reference_hist(values: np.ndarray, lo: float, hi: float, bins: int) -> list[int]:
    inside, _ = np.histogram(values[(values >= lo) & (values < hi)], bins=bins, range=(lo, hi))
    return [int((values < lo).sum()), *inside.tolist(), int((values >= hi).sum())]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "int32"])
def test_input_statistics_equal_numpy(dtype):
    rng = np.random.default_rng(3)
    pixels = rng.normal(100, 30, size=(2, 40, 50)).clip(0, 250).astype(dtype)
    if dtype == "int16":
        pixels -= 120
    valid = rng.random(pixels.shape) > 0.1
    mask = rng.random(pixels.shape[1:]) > 0.2
    if dtype == "float32":
        pixels[0, 3, 4] = np.nan  # non-finite values are left out even where "valid"
    bins = input_bins((90.0, 95.0), (25.0, 20.0), 2, pixels.dtype)
    stats = observe_input(bins, pixels, valid, mask)
    for b in range(2):
        values = pixels[b][valid[b] & mask].astype(np.float64)
        values = values[np.isfinite(values)]
        assert stats.count[b] == values.size
        assert stats.mean(bins.centre)[b] == pytest.approx(values.mean(), rel=1e-12)
        assert stats.std()[b] == pytest.approx(values.std(), rel=1e-9)
        assert (stats.low[b], stats.high[b]) == (values.min(), values.max())
        expected = _reference_hist(values, bins.lo[b], bins.hi[b], bins.bins)
        assert stats.hist[b].tolist() == expected


def test_input_statistics_add_up_over_parts():
    pixels = np.random.default_rng(1).integers(0, 256, size=(3, 30, 40), dtype=np.uint8)
    bins = input_bins(None, None, 3, pixels.dtype)
    whole = observe_input(bins, pixels, None)
    parts = observe_input(bins, pixels[:, :13], None) + observe_input(bins, pixels[:, 13:], None)
    for name in ("count", "s1", "s2", "low", "high", "hist"):
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name))
    assert bins.lo == (0.0,) * 3 and bins.hi == (256.0,) * 3  # the type's range without stats
    empty = InputStats.empty(bins)
    assert np.isnan(empty.mean(bins.centre)).all()


def test_bins_follow_training_statistics_clipped_to_the_type():
    bins = input_bins((60.0, 500.0), (20.0, 10.0), 2, np.dtype("uint8"))
    assert (bins.lo[0], bins.hi[0]) == (0.0, 140.0)  # μ ± 4σ = [-20, 140), clipped at 0
    assert (bins.lo[1], bins.hi[1]) == (0.0, 256.0)  # a mean outside the type: its range
    floats = input_bins((0.2,), (0.1,), 1, np.dtype("float32"))
    assert floats.lo[0] == pytest.approx(-0.2) and floats.hi[0] == pytest.approx(0.6)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=0))
    return e / e.sum(axis=0)


def test_output_statistics_equal_numpy():
    rng = np.random.default_rng(7)
    logits = (3 * rng.normal(size=(4, 33, 47))).astype(np.float32)
    valid = rng.random((33, 47)) > 0.15
    logits[:, ~valid] = np.nan
    stats = observe_output(logits, valid, None, "softmax", stride=1)
    z = logits[:, valid].astype(np.float64)
    p = _softmax(z)
    entropy = -(p * np.log(p)).sum(axis=0) / np.log(4)
    labels = z.argmax(axis=0)
    assert stats.labels.tolist() == np.bincount(labels, minlength=4).tolist()
    assert stats.pixels == valid.sum()
    assert stats.entropy_sum / stats.pixels == pytest.approx(entropy.mean(), rel=1e-5)
    hist, _ = np.histogram(entropy, bins=ENTROPY_BINS, range=(0, 1))
    assert np.abs(stats.entropy_hist - hist).sum() <= 2  # float32 vs float64 at bin edges
    assert stats.low == int((p.max(axis=0) < 0.5).sum())


def test_entropy_on_the_lattice_estimates_the_chunk():
    """Smooth logits, as blending makes them: the lattice's estimates are close to the exact
    values, and labels are still counted on every pixel."""
    rng = np.random.default_rng(3)
    coarse = rng.normal(0, 2, size=(4, 17, 17)).astype(np.float32)
    logits = np.kron(coarse, np.ones((1, 16, 16), np.float32))[:, :256, :250]
    logits += rng.normal(0, 0.3, logits.shape).astype(np.float32)
    valid = np.ones(logits.shape[1:], bool)
    valid[:30, :40] = False
    logits[:, ~valid] = np.nan
    exact = observe_output(logits, valid, None, "softmax", stride=1)
    lattice = observe_output(logits, valid, None, "softmax")
    assert lattice.labels.tolist() == exact.labels.tolist()
    assert lattice.sampled == valid[::STRIDE, ::STRIDE].sum() and exact.sampled == valid.sum()
    assert sum(lattice.entropy_hist) == lattice.sampled
    mean = lambda s: s.entropy_sum / s.sampled  # noqa: E731
    assert mean(lattice) == pytest.approx(mean(exact), abs=0.01)
    assert lattice.low / lattice.sampled == pytest.approx(exact.low / exact.sampled, abs=0.01)


def test_labels_are_numpys_argmax_with_first_maximum_winning():
    rng = np.random.default_rng(5)
    logits = rng.integers(0, 3, size=(5, 70, 33)).astype(np.float32)  # many ties
    valid = rng.random((70, 33)) > 0.1
    logits[:, ~valid] = np.nan
    labels = labels_from_logits(logits, valid, 255)
    expected = np.where(valid, np.nan_to_num(logits, nan=-1).argmax(axis=0), 255)
    np.testing.assert_array_equal(labels, expected)
    one = labels_from_logits(logits[:1] - 1, valid, 255)
    np.testing.assert_array_equal(one, np.where(valid, logits[0] > 1, 255))


def test_one_class_output_uses_sigmoid():
    z = np.array([[[-3.0, -0.5, 0.2, 4.0]]], np.float32)
    stats = observe_output(z, np.ones((1, 4), bool), None, "sigmoid", stride=1)
    p = 1 / (1 + np.exp(-z[0, 0].astype(np.float64)))
    h = -(p * np.log(p) + (1 - p) * np.log(1 - p)) / np.log(2)
    assert stats.labels.tolist() == [2, 2]  # labels are logit > 0
    assert stats.entropy_sum == pytest.approx(h.sum(), rel=1e-5)
    assert stats.low == 2  # σ(−0.5) = 0.38 and σ(0.2) = 0.55 lie within (0.25, 0.75)


def test_chunk_stats_stay_small():
    bins = input_bins((1.0,) * 4, (1.0,) * 4, 4, np.dtype("uint16"))
    pixels = np.ones((4, 64, 64), np.uint16)
    stats = ChunkStats(observe_input(bins, pixels, None),
                       observe_output(np.zeros((6, 8, 8), np.float32), np.ones((8, 8), bool),
                                      None, "softmax"), (0.1,) * 8, "host/1")
    assert len(pickle.dumps(stats)) < 6000
