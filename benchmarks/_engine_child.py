"""The children of ``bench_engine.py``: each measurement runs in a fresh interpreter (so its
peak RSS is its own) and prints one JSON line: an engine run on one scene, or model-only
batches."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

from _common import LoadMeter, cpu_seconds, loadavg, log, maxrss_mib
from _scene import BANDS, scene_path

TILE = 256
OVERLAP = 0.25
BATCH = 8
CLASSES = 4
MODEL_SEED = 0


def build_model() -> Any:
    from _models import bench_unet  # torch: in the children only

    return bench_unet(bands=BANDS, classes=CLASSES, seed=MODEL_SEED)


class ForwardTimer:
    """Forward hooks on the top module: time inside the model and the batch sizes it saw."""

    def __init__(self, module: Any) -> None:
        self.seconds = 0.0
        self.batches: dict[int, int] = {}
        self._start = 0.0
        module.register_forward_pre_hook(self._pre)
        module.register_forward_hook(self._post)

    def _pre(self, _module: Any, args: Any) -> None:
        self._start = time.perf_counter()

    def _post(self, _module: Any, args: Any, _out: Any) -> None:
        self.seconds += time.perf_counter() - self._start
        n = int(args[0].shape[0])
        self.batches[n] = self.batches.get(n, 0) + 1


def child_run(size: int, workdir: Path, seed: int) -> dict[str, Any]:
    """One ``tilerun.run`` on the ``size`` scene; returns timings and peak RSS."""
    import torch

    import tilerun

    source = scene_path(workdir, size, seed)
    out = workdir / f"out-{size}.zarr"
    model = build_model()
    timer = ForwardTimer(model)
    rss_before = maxrss_mib()
    options = tilerun.PredictOptions(
        tile=TILE, overlap=OVERLAP, batch_size=BATCH, device="cpu", overwrite=True
    )
    progress = {"done": 0, "next": 0.0}
    start = time.perf_counter()

    def on_chunk(_result: Any) -> None:
        progress["done"] += 1
        now = time.perf_counter() - start
        if now >= progress["next"]:
            log(
                f"  {size}²: {progress['done']} chunks written, {now:.0f} s, "
                f"{timer.seconds:.0f} s in model"
            )
            progress["next"] = now + 60.0

    load_start = loadavg()
    meter = LoadMeter()
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    summary = tilerun.run(source, model, out, options, on_chunk=on_chunk)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    load = meter.stop()
    with contextlib.suppress(OSError):
        shutil.rmtree(out)
    return {
        "size": size,
        "wall_s": wall,
        "engine_s": summary.seconds,
        "cpu_s": cpu,
        "tiles_run": summary.tiles_run,
        "tiles_minimum": summary.tiles_minimum,
        "chunks": summary.chunks,
        "model_in_run_s": timer.seconds,
        "batches": {str(k): v for k, v in sorted(timer.batches.items())},
        "maxrss_mib": maxrss_mib(),
        "rss_before_run_mib": rss_before,
        "torch_threads": torch.get_num_threads(),
        "loadavg_start": load_start,
        "loadavg_end": load["loadavg"],
        "other_share": load["other_share"],
    }


def child_model(batches: int, warmup: int) -> dict[str, Any]:
    """Model only: ``batches`` random (8, 3, 256, 256) float32 batches under inference_mode."""
    import torch

    model = build_model()
    gen = torch.Generator().manual_seed(1)
    inputs = [torch.randn(BATCH, BANDS, TILE, TILE, generator=gen) for _ in range(4)]
    times = []
    with torch.inference_mode():
        for i in range(warmup):
            model(inputs[i % len(inputs)])
        meter = LoadMeter()
        cpu0 = cpu_seconds()
        for i in range(batches):
            t0 = time.perf_counter()
            model(inputs[i % len(inputs)])
            times.append(time.perf_counter() - t0)
        cpu = cpu_seconds() - cpu0
        load = meter.stop()
    return {
        "batches": batches,
        "warmup": warmup,
        "batch_times_s": times,
        "cpu_s": cpu,
        "torch_threads": torch.get_num_threads(),
        "maxrss_mib": maxrss_mib(),
        "loadavg_end": load["loadavg"],
        "other_share": load["other_share"],
    }
