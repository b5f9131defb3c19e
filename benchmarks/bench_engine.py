#!/usr/bin/env python
"""End-to-end benchmark of the tilerun engine: overhead over the bare model, and memory scaling.

Usage::

    python benchmarks/bench_engine.py                      # sizes 4096 8192 16384 (long on CPU)
    python benchmarks/bench_engine.py --sizes 4096 8192
    python benchmarks/bench_engine.py --quick              # 1024² and 2048², short model sample

What it measures (see benchmarks/README.md for the details and the goals):

* **overhead ratio** on the ``--ratio-size`` scene (default 8192², or the largest size in
  ``--quick``): wall time of ``tilerun.run`` ÷ model-only time for the same number of tiles
  (``summary.tiles_run``), where model-only = random ``(8, 3, 256, 256)`` float32 batches through
  the same model under ``torch.inference_mode`` and nothing else. The model-only time is measured
  on a sample of batches (``--model-batches``, taken once before and once after the engine run)
  and extrapolated per tile.
* **recompute ratio**: ``tiles_run ÷ tiles_minimum``.
* **peak RSS** per size: each size runs in a fresh subprocess that reports
  ``resource.getrusage(RUSAGE_SELF).ru_maxrss``; largest size ÷ smallest size.

Scenes are seeded, synthetic 3-band uint8 GeoTIFFs (512² tiled blocks, deflate, EPSG:32633), written
block by block and cached in ``--workdir``.

Internally the script re-invokes itself with ``--child-run`` / ``--child-model`` (one JSON line on
stdout); those flags are not meant for direct use.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

TILE = 256
OVERLAP = 0.25
BATCH = 8
BANDS = 3
CLASSES = 4
MODEL_SEED = 0
SCENE_VERSION = 1  # bump when the generator changes, to invalidate cached scenes
RATIO_GOAL = 1.05
RSS_GOAL = 1.25
#: above this share of the CPU used by other processes, the wall-time ratio is flagged unreliable
BUSY_LIMIT = 0.05
FULL_SIZES = [4096, 8192, 16384]
QUICK_SIZES = [1024, 2048]


def log(message: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def maxrss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def current_rss_mib() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return None


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_ticks() -> tuple[float, float] | None:
    """Machine-wide (busy, total) CPU seconds from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0.0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy / hz, (busy + idle + iowait) / hz


class LoadMeter:
    """How much of the machine *other* processes used while we measured something.

    ``other_share`` = (machine busy CPU − this process's CPU) ÷ (wall × cores): 0 on an idle
    machine, 0.5 when other processes kept one of two cores busy the whole time.
    """

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.cpu0 = cpu_seconds()
        self.ticks0 = _cpu_ticks()

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        own = cpu_seconds() - self.cpu0
        ticks1 = _cpu_ticks()
        share = None
        if self.ticks0 is not None and ticks1 is not None and wall > 0:
            busy = ticks1[0] - self.ticks0[0]
            share = max(0.0, busy - own) / (wall * (os.cpu_count() or 1))
        return {"other_share": share, "loadavg": loadavg()}


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# --------------------------------------------------------------------------------------------
# Synthetic scene
# --------------------------------------------------------------------------------------------

#: (feature size in px, amplitude) of the smooth noise octaves, plus per-pixel noise.
OCTAVES = ((1024, 60.0), (256, 35.0), (64, 20.0), (16, 8.0))
PIXEL_NOISE = 6.0
BLOCK = 512


def scene_path(workdir: Path, size: int, seed: int) -> Path:
    return workdir / f"scene-{size}-seed{seed}-v{SCENE_VERSION}.tif"


def _coarse_grids(size: int, seed: int) -> list[tuple[int, float, np.ndarray]]:
    """Per octave, a small random lattice (bands, n, n) covering the whole image."""
    rng = np.random.default_rng([seed, size, 0])
    grids = []
    for scale, amplitude in OCTAVES:
        n = size // scale + 2
        grids.append((scale, amplitude, rng.standard_normal((BANDS, n, n)).astype(np.float32)))
    return grids


def _bilinear(grid: np.ndarray, scale: int, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """Lattice ``grid`` (bands, n, n), one node every ``scale`` px, sampled on a pixel window."""
    gy = (np.arange(y0, y0 + h, dtype=np.float32) + 0.5) / scale
    gx = (np.arange(x0, x0 + w, dtype=np.float32) + 0.5) / scale
    iy, ix = np.floor(gy).astype(np.intp), np.floor(gx).astype(np.intp)
    fy, fx = (gy - iy)[:, None], (gx - ix)[None, :]
    # smoothstep weights give a softer, less blocky texture than plain bilinear
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    a = grid[:, iy[:, None], ix[None, :]]
    b = grid[:, iy[:, None], ix[None, :] + 1]
    c = grid[:, iy[:, None] + 1, ix[None, :]]
    d = grid[:, iy[:, None] + 1, ix[None, :] + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def make_scene(workdir: Path, size: int, seed: int) -> Path:
    """Create (or reuse) the seeded ``size × size`` scene; written 512 × 512 block by block."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    path = scene_path(workdir, size, seed)
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.tif")
    log(f"generating {size}×{size} scene -> {path}")
    start = time.perf_counter()
    grids = _coarse_grids(size, seed)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": BANDS,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        # 10 m pixels, upper-left corner in UTM zone 33N
        "transform": from_origin(500000.0, 5500000.0, 10.0, 10.0),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "interleave": "pixel",
        "BIGTIFF": "IF_SAFER",
    }
    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(tmp, "w", **profile) as dst:
        for by, y0 in enumerate(range(0, size, BLOCK)):
            for bx, x0 in enumerate(range(0, size, BLOCK)):
                h, w = min(BLOCK, size - y0), min(BLOCK, size - x0)
                value = np.full((BANDS, h, w), 128.0, np.float32)
                for scale, amplitude, grid in grids:
                    value += amplitude * _bilinear(grid, scale, y0, x0, h, w)
                rng = np.random.default_rng([seed, size, 1, by, bx])
                value += PIXEL_NOISE * rng.standard_normal((BANDS, h, w), dtype=np.float32)
                block = np.clip(np.rint(value), 0, 255).astype(np.uint8)
                dst.write(block, window=Window(x0, y0, w, h))
    os.replace(tmp, path)
    log(
        f"  scene written in {time.perf_counter() - start:.1f} s "
        f"({path.stat().st_size / 2**20:.0f} MiB)"
    )
    return path


# --------------------------------------------------------------------------------------------
# Child processes (fresh interpreter per measurement)
# --------------------------------------------------------------------------------------------


def build_model() -> Any:
    import torch

    from tilerun.models import build_unet

    torch.manual_seed(MODEL_SEED)
    return build_unet("unet", in_channels=BANDS, classes=CLASSES, base=16, depth=4).eval()


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


def spawn(args: list[str]) -> dict[str, Any]:
    """Run this script as a child with ``args``; its last stdout line is a JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed with exit status {proc.returncode}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


# --------------------------------------------------------------------------------------------
# Parent: orchestrate and report
# --------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help=f"scene edges (default {FULL_SIZES})")
    parser.add_argument("--quick", action="store_true", help=f"smoke check: sizes {QUICK_SIZES}")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tilerun-bench"))
    parser.add_argument("--seed", type=int, default=0, help="scene seed")
    parser.add_argument(
        "--ratio-size",
        type=int,
        help="scene for the overhead ratio (default 8192; --quick: largest)",
    )
    parser.add_argument(
        "--model-batches",
        type=int,
        help="timed model-only batches per sample (default 30; quick 4)",
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed model-only warm-up batches")
    parser.add_argument("--json", type=Path, help="also write all raw results to this JSON file")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse measurements saved in WORKDIR/state.json by an interrupted run (same settings)",
    )
    parser.add_argument("--child-run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-model", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child_run is not None:
        print(json.dumps(child_run(args.child_run, args.workdir, args.seed)))
        return 0
    if args.child_model is not None:
        print(json.dumps(child_model(args.child_model, args.warmup)))
        return 0

    sizes = sorted(set(args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)))
    ratio_size = args.ratio_size or (max(sizes) if args.quick else 8192)
    model_batches = args.model_batches or (4 if args.quick else 30)
    started = dt.datetime.now(dt.timezone.utc)
    log(f"sizes {sizes}, overhead ratio on {ratio_size}², model sample {model_batches} batches ×2")

    for size in sorted({*sizes, ratio_size}):
        make_scene(args.workdir, size, args.seed)

    child_common = ["--workdir", str(args.workdir), "--seed", str(args.seed)]
    model_args = ["--child-model", str(model_batches), "--warmup", str(args.warmup)]
    # Every finished measurement is saved at once, so an interrupted run can be resumed.
    config = {
        "sizes": sizes,
        "ratio_size": ratio_size,
        "model_batches": model_batches,
        "warmup": args.warmup,
        "seed": args.seed,
        "scene_version": SCENE_VERSION,
    }
    state_path = args.workdir / "state.json"
    state: dict[str, Any] = {"config": config, "started": None, "steps": {}}
    if args.resume and state_path.exists():
        saved = json.loads(state_path.read_text())
        if saved.get("config") == config:
            state = saved
            log(f"resuming: {sorted(state['steps'])} already measured ({state_path})")
        else:
            log(f"not resuming: {state_path} holds a different configuration")
    if state["started"] is None:
        state["started"] = started.isoformat()
    started = dt.datetime.fromisoformat(state["started"])

    def step(name: str, what: str, child: list[str]) -> dict[str, Any]:
        if name not in state["steps"]:
            log(what)
            state["steps"][name] = spawn(child)
            state_path.write_text(json.dumps(state, indent=1))
        return state["steps"][name]

    runs: dict[int, dict[str, Any]] = {}
    samples: list[dict[str, Any]] = []
    for size in sorted({*sizes, ratio_size}):
        if size == ratio_size:
            samples.append(
                step(
                    "model-before",
                    f"model-only sample ({model_batches} batches) before the {size}² run",
                    model_args,
                )
            )
        runs[size] = r = step(
            f"run-{size}",
            f"tilerun.run on {size}² in a fresh process",
            ["--child-run", str(size), *child_common],
        )
        log(
            f"  {size}²: {r['wall_s']:.1f} s wall, {r['tiles_run']} tiles, "
            f"peak RSS {r['maxrss_mib']:.0f} MiB"
        )
        if size == ratio_size:
            samples.append(
                step(
                    "model-after",
                    f"model-only sample ({model_batches} batches) after the {size}² run",
                    model_args,
                )
            )

    batch_times = [t for s in samples for t in s["batch_times_s"]]
    per_batch = statistics.mean(batch_times)
    per_tile = per_batch / BATCH
    model_cpu_per_tile = sum(s["cpu_s"] for s in samples) / (len(batch_times) * BATCH)
    spread = (min(batch_times), statistics.median(batch_times), max(batch_times))
    per_sample = [statistics.mean(s["batch_times_s"]) for s in samples]

    info = machine()
    lines: list[str] = []
    out = lines.append
    out(f"## tilerun engine benchmark — {started.strftime('%Y-%m-%d %H:%M UTC')}")
    out("")
    out(
        f"Machine: {info['cpus']} CPUs ({info['processor']}), torch {info['torch']} with "
        f"{info['torch_threads']} intra-op threads, Python {info['python']}, {info['platform']}."
    )
    out(
        f"Settings: tile {TILE}, overlap {OVERLAP}, batch {BATCH}, default chunk, device cpu; "
        f"model U-Net base 16 depth 4, {BANDS}→{CLASSES} classes, seed {MODEL_SEED}."
    )
    out("")
    out(
        "| scene | tiles run | tiles min | run ÷ min | tilerun.run wall s | model-only s (extrap.) "
        "| wall ÷ model-only | CPU ÷ model CPU | in-run model s | model busy | peak RSS MiB |"
    )
    out("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sorted(runs):
        r = runs[size]
        model_only = per_tile * r["tiles_run"]
        model_cpu = model_cpu_per_tile * r["tiles_run"]
        mark = " **(ratio scene)**" if size == ratio_size else ""
        out(
            f"| {size}²{mark} | {r['tiles_run']} | {r['tiles_minimum']} "
            f"| {fmt(r['tiles_run'] / r['tiles_minimum'])} | {r['wall_s']:.1f} | {model_only:.1f} "
            f"| {fmt(r['wall_s'] / model_only)} | {fmt(r['cpu_s'] / model_cpu)} "
            f"| {r['model_in_run_s']:.1f} | {100 * r['model_in_run_s'] / r['wall_s']:.1f} % "
            f"| {r['maxrss_mib']:.0f} |"
        )
    out("")
    rr = runs[ratio_size]
    ratio = rr["wall_s"] / (per_tile * rr["tiles_run"])
    recompute = rr["tiles_run"] / rr["tiles_minimum"]
    small, large = min(sizes), max(sizes)
    rss_ratio = runs[large]["maxrss_mib"] / runs[small]["maxrss_mib"]

    def verdict(ok: bool) -> str:
        return "pass" if ok else "**MISS**"

    out("| metric | value | goal | |")
    out("|---|---:|---:|---|")
    # The wall ratio compares measurements taken minutes apart; other load skews it either way.
    shares = [rr["other_share"], *(smp["other_share"] for smp in samples)]
    busy = max((x for x in shares if x is not None), default=0.0)
    ratio_verdict = verdict(ratio <= RATIO_GOAL)
    if busy > BUSY_LIMIT:
        ratio_verdict = f"unreliable: other processes used up to {100 * busy:.0f} % of the CPU"
    out(
        f"| tilerun.run wall ÷ model-only, {ratio_size}² | {fmt(ratio)} | ≤ {RATIO_GOAL} "
        f"| {ratio_verdict} |"
    )
    out(
        f"| tiles_run ÷ tiles_minimum, {ratio_size}² | {fmt(recompute)} | 1.000 "
        f"| {verdict(recompute <= 1.0)} |"
    )
    out(
        f"| peak RSS {large}² ÷ {small}² | {fmt(rss_ratio)} "
        f"({runs[large]['maxrss_mib']:.0f} / {runs[small]['maxrss_mib']:.0f} MiB) "
        f"| ≤ {RSS_GOAL} | {verdict(rss_ratio <= RSS_GOAL)} |"
    )
    out("")
    if busy > BUSY_LIMIT:
        out(
            f"**Warning:** other processes used {', '.join(f'{100 * x:.0f} %' for x in shares)} of "
            f"the machine's CPU during the {ratio_size}² run and the two model-only samples. Under "
            "such load the wall-time ratio is not meaningful (it can land far on either side of "
            "the truth: Linux shares CPU per thread, and OpenMP's two threads stall whenever one "
            "is preempted); rerun on an idle machine."
        )
        out("")
    out(
        f"Model-only time is extrapolated per tile from a sample of {len(batch_times)} timed "
        f"batches of {BATCH} random float32 tiles ({len(samples)} fresh processes × "
        f"{model_batches} "
        f"batches, after {args.warmup} warm-up batches each, taken before and after the "
        f"{ratio_size}² run): {per_batch:.3f} s/batch = {per_tile * 1000:.1f} ms/tile "
        f"(min / median / max batch {spread[0]:.3f} / {spread[1]:.3f} / {spread[2]:.3f} s; "
        f"per-sample means {', '.join(f'{m:.3f}' for m in per_sample)} s). "
        f"Model-only time for a scene = {per_tile * 1000:.1f} ms × tiles run."
    )
    out(
        "`in-run model s` is the time spent inside the model's forward during tilerun.run "
        "(forward hooks), `model busy` that time ÷ the run's wall time (how well reading, "
        "blending and writing hide behind the model); `CPU ÷ model CPU` compares the process CPU "
        "time (user+sys, all threads) of the run with the model-only CPU time for the same tiles "
        "(OpenMP spin-waiting inflates CPU time when other processes compete for the cores)."
    )
    batches = ", ".join(
        f"{size}²: " + " ".join(f"{n}×{c}" for n, c in runs[size]["batches"].items())
        for size in sorted(runs)
    )
    out(f"Forward calls by batch size (size×calls): {batches}.")
    out(
        "Peak RSS baseline (after imports and model build, before run): "
        + ", ".join(f"{s}²: {runs[s]['rss_before_run_mib']:.0f} MiB" for s in sorted(runs))
        + "; peak RSS of the model-only processes (baseline + the model's activations for a batch "
        + "of 8): "
        + ", ".join(f"{smp['maxrss_mib']:.0f}" for smp in samples)
        + " MiB."
    )
    out(
        "Load average (1/5/15 min) at start / end of each run: "
        + "; ".join(
            f"{s}²: {runs[s]['loadavg_start']} / {runs[s]['loadavg_end']}" for s in sorted(runs)
        )
        + "."
    )

    def share(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.0f} %"

    out(
        "Share of the machine's CPU used by *other* processes while measuring (0 % = idle "
        "machine; timings are only comparable when these are low): "
        + ", ".join(f"run {s}²: {share(runs[s]['other_share'])}" for s in sorted(runs))
        + ", model-only samples: "
        + ", ".join(share(smp["other_share"]) for smp in samples)
        + "."
    )
    print("\n".join(lines), flush=True)

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": started.isoformat(),
                    "machine": info,
                    "runs": runs,
                    "model_samples": samples,
                    "ratio": ratio,
                    "recompute": recompute,
                    "rss_ratio": rss_ratio,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
