"""The run report a prediction stores: input statistics over every pixel of the lattice once
(tiles overlap, chunks share tiles), output statistics equal to the stored output's, drift
warnings, timing; the same after ``--resume`` on a complete output."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import zarr

import tilerun
from tilerun.blending import Blend
from tilerun.engine.partial import core_region
from tilerun.engine.plan import ChunkPlan
from tilerun.geometry import make_grid
from tilerun.report.drift import DriftWarning
from tilerun.report.lattice import STRIDE
from tilerun.report.outputs import ENTROPY_BINS


def _lattice(height: int, width: int) -> np.ndarray:
    """The pixels the report measures (every STRIDE-th image row and column)."""
    on = np.zeros((height, width), bool)
    on[::STRIDE, ::STRIDE] = True
    return on


def _run(image, model, out, **options):
    opts = tilerun.PredictOptions.from_kwargs(tile=32, overlap=0.25, chunk=48, **options)
    return tilerun.run(image, model, out, opts)


def test_input_and_output_statistics_equal_numpy_on_the_whole_scene(tmp_path, small_unet):
    rng = np.random.default_rng(4)
    image = rng.normal(size=(3, 150, 170)).astype(np.float32)
    image[:, 10:20, 30:50] = np.nan  # nodata
    image[1, 60, 70] = np.nan  # one band only
    summary = _run(image, small_unet, tmp_path / "o.zarr", mean=(0.1, 0.0, -0.1),
                   std=(1.0, 1.1, 0.9), output=("logits", "labels"))
    report = zarr.open_group(str(tmp_path / "o.zarr"), mode="r").attrs["tilerun"]["report"]
    assert report == summary.report
    for b, band in enumerate(report["bands"]):
        values = image[b][np.isfinite(image[b]) & _lattice(150, 170)].astype(np.float64)
        assert band["pixels"] == values.size  # each lattice pixel once, nodata left out
        assert band["mean"] == pytest.approx(values.mean(), rel=1e-9, abs=1e-12)
        assert band["std"] == pytest.approx(values.std(), rel=1e-9)
        assert (band["min"], band["max"]) == (values.min(), values.max())
        lo, hi = band["hist_lo"], band["hist_hi"]
        inside, _ = np.histogram(values[(values >= lo) & (values < hi)], len(band["hist"]),
                                 range=(lo, hi))
        assert band["hist"] == inside.tolist()
        assert band["below"] + band["above"] == ((values < lo) | (values >= hi)).sum()
        assert not band["drifted"]

    stored = zarr.open_group(str(tmp_path / "o.zarr"), mode="r")
    labels = np.asarray(stored["labels"][:])
    logits = np.asarray(stored["logits"][:], np.float64)
    out = report["output"]
    counts = np.bincount(labels[labels != 255], minlength=3)
    assert [c["pixels"] for c in out["classes"]] == counts.tolist()
    assert sum(c["fraction"] for c in out["classes"]) == pytest.approx(1.0)
    valid = labels != 255
    z = logits[:, valid]
    p = np.exp(z - z.max(axis=0))
    p /= p.sum(axis=0)
    entropy = -(p * np.log(p)).sum(axis=0) / np.log(3)
    assert out["pixels"] == valid.sum()
    # entropy and confidence: on the valid pixels of the lattice (every STRIDE-th row, column)
    on = _lattice(*valid.shape)[valid]
    assert out["entropy_pixels"] == on.sum()
    assert out["entropy_mean"] == pytest.approx(entropy[on].mean(), rel=1e-5)
    assert sum(out["entropy_hist"]) == on.sum() and len(out["entropy_hist"]) == ENTROPY_BINS
    assert out["low_confidence"] == pytest.approx((p.max(axis=0) < 0.5)[on].mean(), abs=2e-4)

    timing = report["timing"]
    assert timing["batches"] >= 1 and timing["devices"] == 1
    assert 0 < timing["latency_p50_ms"] <= timing["latency_p99_ms"]
    assert 0 < timing["model_busy"] <= 1.0
    assert timing["tiles_run"] == summary.tiles_run and timing["tiles_skipped"] == 0
    assert report["chunks"] == summary.chunks


@pytest.mark.parametrize("skip", [frozenset(), frozenset({(0, 0), (1, 2), (3, 3)})])
def test_core_regions_count_every_pixel_under_a_run_tile_once(skip):
    grid = make_grid(100, 90, 32, 8)
    plan = ChunkPlan(grid, Blend("gaussian"), 40, skip=skip)
    seen = np.zeros((100, 90), int)
    for i, j in plan.chunks():
        if not plan.owned_tiles(i, j):
            continue
        core, mask = core_region(plan, (i, j))
        assert plan.read_window(i, j).contains(core)
        seen[core.slices()] += 1 if mask is None else mask
    expected = np.ones((100, 90), int)
    s = grid.stride
    for r, c in skip:
        expected[r * s: (r + 1) * s, c * s: (c + 1) * s] = 0
    np.testing.assert_array_equal(seen, expected)


def test_drift_warns_on_a_shifted_scene_and_not_on_a_matching_one(tmp_path, small_unet):
    image = np.random.default_rng(2).normal(5.0, 2.0, size=(3, 64, 64)).astype(np.float32)
    measured = image[:, ::STRIDE, ::STRIDE]  # the lattice the report measures
    own = {"mean": tuple(measured.mean(axis=(1, 2)).tolist()),
           "std": tuple(measured.std(axis=(1, 2)).tolist())}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DriftWarning)
        matching = _run(image, small_unet, tmp_path / "a.zarr", **own)
    assert all(b["drift"] < 0.01 for b in matching.report["bands"])
    shifted = image.copy()
    shifted[1] = shifted[1] * 0.3 + 4.0  # band 2: darker and flatter
    with pytest.warns(DriftWarning, match=r"band 2 mean .* drift") as caught:
        summary = _run(shifted, small_unet, tmp_path / "b.zarr", **own)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert "band 1" not in str(caught[0].message)
    assert [b["drifted"] for b in summary.report["bands"]] == [False, True, False]


def test_resume_on_a_complete_output_returns_its_report(tmp_path, small_unet):
    image = np.random.default_rng(1).normal(size=(3, 40, 40)).astype(np.float32)
    first = _run(image, small_unet, tmp_path / "o.zarr")
    again = _run(image, small_unet, tmp_path / "o.zarr", resume=True)
    assert again.already_complete and again.report == first.report


def test_skipped_tiles_pixels_are_not_counted(tmp_path, identity):
    from tilerun.engine.skipping import skipped_tiles
    from tilerun.tissue import TissueMask

    image = np.random.default_rng(6).normal(size=(3, 96, 96)).astype(np.float32)
    tissue = np.zeros((96, 96), bool)
    tissue[:, :20] = True
    mask = TissueMask(tissue, (1, 1))
    summary = _run(image, identity, tmp_path / "o.zarr", tissue=mask)
    plan = ChunkPlan(make_grid(96, 96, 32, 0.25), Blend("gaussian"), 48)
    skip = skipped_tiles(plan, mask)
    assert summary.tiles_skipped == len(skip) > 0
    counted = _lattice(96, 96)
    s = plan.grid.stride
    for r, c in skip:
        counted[r * s: (r + 1) * s, c * s: (c + 1) * s] = False
    for b, band in enumerate(summary.report["bands"]):
        values = image[b][counted].astype(np.float64)
        assert band["pixels"] == values.size
        assert band["mean"] == pytest.approx(values.mean(), rel=1e-9)
    assert summary.report["timing"]["tiles_skipped"] == len(skip)
