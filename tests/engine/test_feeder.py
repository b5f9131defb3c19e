"""The compute stage: full batches across chunks, failures reach the caller, idle threads exit."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

import tilerun
from tilerun.blending import Blend
from tilerun.engine import ChunkPlan, PredictOptions
from tilerun.engine import feeder as feeder_module
from tilerun.engine.feeder import DeviceFeeder
from tilerun.engine.partial import chunk_work
from tilerun.engine.runner import TileRunner
from tilerun.geometry import make_grid
from tilerun.models import as_model
from tilerun.models.normalise import Normalizer
from tilerun.sources import open_source


class Slow(nn.Module):
    """A 1×1 convolution that takes ``seconds`` per call: the model, not reading, is the
    bottleneck, as on any real model."""

    downsampling = 1

    def __init__(self, seconds: float = 0.02, fail_on_call: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.seconds = seconds
        self.fail_on_call = fail_on_call
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(x.shape[0]))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise RuntimeError("device lost")
        time.sleep(self.seconds)
        return self.conv(x)


#: model calls before the run: the probe (also the fp32 reference) and the backend's check
PREPARE_CALLS = 2


def _options(**kwargs: object) -> PredictOptions:
    base = dict(tile=48, overlap=0.25, chunk=40, batch_size=8, threads=2, tissue="none",
                backend="torch")  # the calls are counted in Python
    return PredictOptions.from_kwargs(**{**base, **kwargs})


def test_batches_are_full_across_chunk_boundaries(tmp_path):
    # 300² with stride 36 is 9×9 = 81 tiles in 16 chunks of 96², 1 to 9 tiles each: batching
    # per chunk would end all 16 chunks with a short batch. Each engine thread has one chunk
    # in flight, so 6 threads keep enough tiles queued to fill batches of 8.
    image = np.random.default_rng(1).normal(size=(3, 300, 300)).astype(np.float32)
    model = Slow()
    summary = tilerun.run(image, model, tmp_path / "o.zarr", _options(chunk=96, threads=6))
    grid = make_grid(300, 300, 48, 0.25)
    calls = model.calls[PREPARE_CALLS:]
    assert model.calls[:PREPARE_CALLS] == [2, 2]
    assert set(calls) == {8}  # a short batch reaches the model padded to the full batch
    assert summary.tiles_run == grid.count == sum(n * k for n, k in summary.batches.items())
    short = [n for n in summary.batches if n < 8]
    # a short batch only when the model would otherwise wait: at the start and at the end
    assert sum(summary.batches[n] for n in short) <= 2, summary.batches
    assert len(calls) == sum(summary.batches.values()) <= -(-grid.count // 8) + 2


def test_a_short_batch_gives_the_same_bits_as_a_full_one(small_unet):
    """Whether a tile ran in a short batch (cut when the model would wait: a matter of
    timing) or a full one must not change its logits in any bit, or reruns and remote runs
    differ from local ones (eager torch on a CPU runs a batch of one with other kernels)."""
    runner = TileRunner(as_model(small_unet), torch.device("cpu"), backend="torch")
    tiles = torch.randn((8, 3, 64, 64), generator=torch.Generator().manual_seed(2))
    runner.probe(3, 64, tiles[:2])
    runner.select(tiles[:2], 8)
    full = runner.forward(tiles)
    for n in (1, 3):
        torch.testing.assert_close(runner.forward(tiles[:n]), full[:n], rtol=0, atol=0)


def test_results_do_not_depend_on_how_batches_fall(tmp_path, image, small_unet):
    runs = [
        tilerun.predict(image, small_unet, tmp_path / f"{b}.zarr", **vars(_options(
            batch_size=b, chunk=c)))["logits"].values
        for b, c in ((1, 4096), (8, 40), (5, 64))
    ]
    for other in runs[1:]:
        np.testing.assert_allclose(other, runs[0], rtol=0, atol=1e-6)


def test_a_model_failure_reaches_the_caller_and_leaves_nothing(tmp_path, image):
    model = Slow(seconds=0.0, fail_on_call=PREPARE_CALLS + 2)
    with pytest.raises(RuntimeError, match="device lost"):
        tilerun.run(image, model, tmp_path / "o.zarr", _options())
    assert not (tmp_path / "o.zarr").exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("tilerun-")]


def _feeder(image: np.ndarray) -> tuple[DeviceFeeder, ChunkPlan]:
    grid = make_grid(150, 170, 48, 0.25)
    plan = ChunkPlan(grid, Blend(), 64)
    runner = TileRunner(as_model(Slow(seconds=0.0)), torch.device("cpu"))
    normalize = Normalizer(np.zeros(3, np.float32), np.ones(3, np.float32))
    return DeviceFeeder(runner, normalize, Blend().weights(grid), 4), plan


def test_idle_threads_exit_and_come_back(monkeypatch, image):
    monkeypatch.setattr(feeder_module, "IDLE_EXIT_S", 0.05)
    feeder, plan = _feeder(image)
    work = chunk_work(open_source(image), plan, (0, 0))
    first = feeder.submit(work).result(timeout=30)
    deadline = time.time() + 10
    while time.time() < deadline and any(
        t.name.startswith("tilerun-") for t in threading.enumerate()
    ):
        time.sleep(0.02)
    assert not [t for t in threading.enumerate() if t.name.startswith("tilerun-")]
    again = feeder.submit(work).result(timeout=30)  # a new generation of threads starts
    np.testing.assert_array_equal(first, again)
    feeder.close()


def test_feeder_pickles_without_its_threads(image):
    feeder, plan = _feeder(image)
    work = chunk_work(open_source(image), plan, (1, 1))
    before = feeder.submit(work).result(timeout=30)
    copy = pickle.loads(pickle.dumps(feeder))
    assert copy.tiles_run == 0 and copy._lanes is None
    np.testing.assert_array_equal(copy.submit(work).result(timeout=30), before)
    feeder.close()
    copy.close()


def test_canvas_is_the_weighted_sum_of_the_tiles(image):
    """Against a plain per-tile numpy reference of ``Σ w·z``."""
    feeder, plan = _feeder(image)
    work = chunk_work(open_source(image), plan, (1, 1))
    canvas = feeder.submit(work).result(timeout=30)
    feeder.close()
    module = feeder.runner.module
    w = Blend().weights(plan.grid)
    expected = np.zeros_like(canvas)
    with torch.inference_mode():
        for y, x in work.offsets.tolist():
            tile = torch.from_numpy(work.pixels[None, :, y: y + 48, x: x + 48].copy())
            expected[:, y: y + 48, x: x + 48] += module.conv(tile)[0].numpy() * w
    np.testing.assert_allclose(canvas, expected, rtol=1e-6, atol=1e-6)


def test_closing_fails_chunks_still_in_flight(image):
    """An interrupted run closes the stage: whoever waits for a chunk must wake up."""

    class Stuck(nn.Module):
        downsampling = 1

        def __init__(self) -> None:
            super().__init__()
            self.release = threading.Event()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.release.wait(timeout=30)
            return x[:, :2]

    grid = make_grid(150, 170, 48, 0.25)
    plan = ChunkPlan(grid, Blend(), 64)
    model = Stuck()
    runner = TileRunner(as_model(model), torch.device("cpu"))
    normalize = Normalizer(np.zeros(3, np.float32), np.ones(3, np.float32))
    feeder = DeviceFeeder(runner, normalize, Blend().weights(grid), 2)
    source = open_source(image)
    futures = [feeder.submit(chunk_work(source, plan, index)) for index in plan.chunks()]
    time.sleep(0.2)  # the first batch is inside the model
    closer = threading.Thread(target=feeder.close)
    closer.start()
    model.release.set()
    closer.join(timeout=30)
    assert not closer.is_alive()
    outcomes = [f.exception(timeout=5) for f in futures]  # none waits forever
    assert any(isinstance(e, RuntimeError) and "stopped" in str(e) for e in outcomes)


def test_huge_but_finite_logits_are_not_taken_for_bad_ones(tmp_path, image):
    """A tile's float32 sum overflows at 1e37 per logit; the blended values do not."""

    class Huge(nn.Module):
        downsampling = 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0], 2, *x.shape[2:]), 1e37)

    ds = tilerun.predict(image, Huge(), tmp_path / "o.zarr", tile=48, overlap=0.25, chunk=64)
    np.testing.assert_allclose(ds.logits.values, 1e37, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["uint16", "bool", "float64"])
def test_flipped_views_and_types_torch_lacks_are_read(tmp_path, identity, dtype):
    """A flipped (negative-stride) view of the caller's array, in types torch has no
    arithmetic for, goes through the identity model unchanged and untouched."""
    base = (np.random.default_rng(2).random((2, 70, 90)) * 60000).astype(dtype)
    flipped = base[:, ::-1, ::-1]
    before = flipped.copy()
    ds = tilerun.predict(flipped, identity, tmp_path / "o.zarr", tile=32, overlap=0.25)
    np.testing.assert_allclose(ds.logits.values, flipped.astype(np.float64), rtol=2e-6, atol=2e-6)
    np.testing.assert_array_equal(flipped, before)
