#!/usr/bin/env python
"""GPU check for tilerun: is the GPU output right, and how much of the model's speed is kept?

Usage (from the repo root, on a machine with one NVIDIA GPU)::

    bash benchmarks/gpu_check.sh                     # the prepared command (< 8 minutes)
    python benchmarks/gpu_check.py                   # the same report, without the install step
    python benchmarks/gpu_check.py --quick           # smoke test: 4096² scene, fewer batches
    python benchmarks/gpu_check.py --quick --device cpu --scene-size 512 --tile 128 --overlap 16
    python benchmarks/gpu_check.py --backends torch  # backend rows: torch only (no compile)

The report (markdown) goes to stdout, section by section as each finishes; progress goes to
stderr. Exit status: 0 when every step ran (whether or not a goal was met: the report says
pass/miss), 1 when a step crashed, 2 when CUDA is not available (and ``--device`` is cuda),
124 when interrupted (SIGTERM/SIGINT, e.g. by ``timeout``) after printing what was measured.

What each number means:

* **Correctness.** One seeded 1024² scene (``tilerun.sample.write_scene``), one U-Net (base 16,
  depth 4, 3→4 classes, ``torch.manual_seed(0)``), the same options (tile, overlap, chunk,
  batch size) on every run; only device and precision change. ``max |Δ|`` is the largest
  absolute difference of the logits from the CPU fp32 run's, ``max |cpu|`` the largest absolute
  CPU logit, ``rel. error`` = ``max |Δ| ÷ max |cpu|``. Goals: ≤ 1e-4 for fp32 on the GPU and
  ≤ 3e-2 for bf16 on the GPU. PyTorch runs fp32 convolutions as TF32 on the GPU by default
  (``torch.backends.cudnn.allow_tf32``); when it is on, an extra row with TF32 off shows what
  the engine gives in true fp32.
* **Throughput**, per model (U-Net base 16 and base 64, depth 4, 3→4 classes), on a seeded
  16384² 3-band uint8 GeoTIFF (tiled 512², deflate; cached in ``--workdir``), with
  ``PredictOptions(tile=512, overlap=64, precision="bf16", batch_size=16, chunk=2048,
  threads=8, tissue="none")``. A warm-up run of the same model and options on a 2048² scene
  comes first, so CUDA initialisation and kernel loading are not timed.

  - ``tiles``: ``summary.tiles_run`` of the timed run.
  - ``model-only s``: the time the model alone needs for that many tiles: random
    ``(B, 3, 512, 512)`` float32 batches already on the GPU, under ``torch.inference_mode`` and
    ``torch.autocast(bfloat16)``, after warm-up batches, ``torch.cuda.synchronize()`` before
    the clock stops. ``timed`` batches are run (at least 50, ``--min-batches``; every batch of
    the run when there are more, up to ``--max-batches``) and the time per tile is scaled to
    ``tiles``.
  - ``end-to-end s``: wall time of the whole ``tilerun.run(scene, model, out, options)`` call
    (open and check, probe, read, normalise, model, blend, write Zarr, finalise); ``engine s``
    is the part the run itself reports (``summary.seconds``: executing the chunk graph).
  - ``kept``: ``model-only s ÷ end-to-end s``, the fraction of the model's own speed the
    pipeline keeps (1.0: the pipeline adds nothing). Goal ≥ 0.90.
  - ``GPU busy %``: mean of ``torch.cuda.utilization()`` (NVML: the share of time a kernel was
    running) sampled every 0.2 s during the run; falls back to ``nvidia-smi`` polling when
    ``pynvml`` is missing. The same for the model-only loop, for reference (its ceiling).
  - ``Mpx/s``: scene pixels (16384²) ÷ end-to-end seconds.
  - ``peak GiB``: ``torch.cuda.max_memory_allocated`` during the run.
  - ``forward calls``: the run's forward calls by the number of tiles in them, from
    ``RunSummary.batches`` (the feeder's count, probe excluded), e.g. ``16×85 9×1``. On CUDA
    a short batch is padded to the full batch size before the model sees it.

* **Backends**: one row per backend of ``--backends`` (default on CUDA ``torch compile``, on a
  CPU ``torch onnxruntime``), each asked for explicitly (``PredictOptions(backend=...)``), at the
  throughput runs' precision and options, for one model (``--backend-size``, default the
  largest of ``--sizes``): a warm-up run, then the timed end-to-end run on the same scene, as
  in the throughput rows (no model-only loop). Before them, the correctness scene is run with
  the check model and that backend.

  - ``used``: ``summary.backend`` of the timed run (and of the other runs, when they differ):
    the backend that actually ran; tilerun falls back to the model as loaded, with a warning,
    when the one asked for fails to convert or misses its tolerance.
  - ``backend s``: ``summary.backend_seconds`` (converting or compiling, loading and checking
    the backend on the probe batch, before any work) of the correctness-scene, warm-up and
    timed runs. ``compile`` pays for inductor's compilation in the first run of each model
    (the check model's, then the row's when its width differs); later runs reuse it.
  - ``end-to-end s``, ``engine s``, ``GPU busy % run``, ``Mpx/s``, ``peak GiB``, ``forward
    calls``: as in the throughput rows; ``× default``: the default (``auto``) row's end-to-end
    seconds for the same model ÷ this row's (above 1: faster).
  - ``max |Δ| vs default``: the largest absolute difference of the correctness scene's logits
    from the default run's at the same device and precision (the correctness run at that
    precision, ``backend="auto"``; on CUDA that is ``torch``), and in brackets relative to the
    default's largest absolute logit.

  A backend that cannot run here at all (not installed, wrong device or precision, e.g.
  ``onnxruntime`` at bf16) gets a row saying why. A row starts only when its estimate fits in
  what is left of the time budget (``compile``: 150 s, two cold compiles; others 30 s), else
  its row says it was skipped.
* **Steps**: the seconds each step took (scene generation, each run), and whether it crashed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import tilerun
from tilerun.backends import BACKENDS, CHOICES, Target
from tilerun.engine import PredictOptions, RunSummary
from tilerun.models import as_model, build_unet
from tilerun.sample import make_scene, write_scene

FP32_GOAL = 1e-4
BF16_GOAL = 3e-2
KEPT_GOAL = 0.90
BANDS, CLASSES, DEPTH = 3, 4, 4
CHECK_BASE = 16
BASE_TILE = 4096  # the big scene is mirrored copies of one in-memory scene of this edge
SAMPLE_PERIOD_S = 0.2
#: seconds of the budget a backend row needs left to start (compile: two cold compilations)
BACKEND_NEED_S = {"compile": 150.0}
DEFAULT_NEED_S = 30.0


class Interrupted(BaseException):
    """SIGTERM/SIGINT: stop measuring, print what is known."""


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def out(text: str = "") -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    device: str
    precision: str
    sizes: tuple[int, ...]
    scene_size: int
    check_size: int
    warmup_size: int
    tile: int
    overlap: int
    batch_size: int
    chunk: int
    threads: int
    min_batches: int
    max_batches: int
    warmup_batches: int
    seed: int
    workdir: Path
    budget_s: float
    backends: tuple[str, ...]
    backend_size: int

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def options(self, device: str | None = None, precision: str | None = None,
                backend: str = "auto") -> PredictOptions:
        return PredictOptions(
            tile=self.tile, overlap=self.overlap, batch_size=self.batch_size, chunk=self.chunk,
            threads=self.threads, device=device or self.device,
            precision=precision or self.precision, overwrite=True, tissue="none",
            backend=backend,
        )


def parse_args(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: 4096² scene, few batches")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (smoke test)")
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"),
                   help="precision of the throughput runs (default bf16)")
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 64],
                   help="U-Net base widths of the throughput rows (default 16 64)")
    p.add_argument("--scene-size", type=int, help="throughput scene edge (16384; quick 4096)")
    p.add_argument("--check-size", type=int, default=1024, help="correctness scene edge")
    p.add_argument("--warmup-size", type=int, default=2048, help="warm-up scene edge")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64, help="overlap in pixels")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--chunk", type=int, default=2048)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--min-batches", type=int, help="fewest timed model-only batches (50; quick 3)")
    p.add_argument("--max-batches", type=int, help="most timed model-only batches (400; quick 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/tilerun-gpu"))
    p.add_argument("--budget", type=float, default=450.0,
                   help="seconds; steps that would start after this are skipped (default 450)")
    p.add_argument("--backends", nargs="*", choices=CHOICES,
                   help="backend rows (cuda: torch compile; cpu: torch onnxruntime; none: "
                        "no rows)")
    p.add_argument("--backend-size", type=int,
                   help="U-Net base width of the backend rows (default the largest of --sizes)")
    a = p.parse_args(argv)
    scene = a.scene_size or (4096 if a.quick else 16384)
    cuda = a.device.startswith("cuda")
    backends = a.backends if a.backends is not None else (
        ["torch", "compile"] if cuda else ["torch", "onnxruntime"])
    return Config(
        device=a.device, precision=a.precision, sizes=tuple(a.sizes), scene_size=scene,
        check_size=min(a.check_size, scene), warmup_size=min(a.warmup_size, scene),
        tile=a.tile, overlap=a.overlap, batch_size=a.batch_size, chunk=a.chunk,
        threads=a.threads, min_batches=a.min_batches or (3 if a.quick else 50),
        max_batches=a.max_batches or (20 if a.quick else 400),
        warmup_batches=1 if a.quick else 5, seed=a.seed, workdir=a.workdir, budget_s=a.budget,
        backends=tuple(dict.fromkeys(backends)), backend_size=a.backend_size or max(a.sizes),
    )


# --------------------------------------------------------------------------------------------
# Steps: timing, crash capture, time budget
# --------------------------------------------------------------------------------------------


@dataclass
class Steps:
    budget_s: float
    start: float = field(default_factory=time.perf_counter)
    rows: list[tuple[str, float, str]] = field(default_factory=list)

    @property
    def crashed(self) -> bool:
        return any(status.startswith("crashed") for _, _, status in self.rows)

    def left(self) -> float:
        """Seconds of the budget left (negative: over it)."""
        return self.budget_s - (time.perf_counter() - self.start)

    def skip(self, name: str, why: str) -> None:
        self.rows.append((name, 0.0, f"skipped ({why})"))
        log(f"skip {name}: {why}")

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run one step; a crash is recorded (traceback on stderr) and None returned."""
        if self.left() < 0:
            self.skip(name, f"over the {self.budget_s:.0f} s budget")
            return None
        log(f"start {name}")
        t0 = time.perf_counter()
        try:
            result = fn()
        except Interrupted:
            self.rows.append((name, time.perf_counter() - t0, "interrupted"))
            raise
        except Exception as err:  # reported; the other steps still run
            traceback.print_exc()
            first = (str(err) or type(err).__name__).splitlines()[0][:200]
            self.rows.append((name, time.perf_counter() - t0,
                              f"crashed: {type(err).__name__}: {first}"))
            return None
        seconds = time.perf_counter() - t0
        self.rows.append((name, seconds, "ok"))
        log(f"done {name} in {seconds:.1f} s")
        return result

    def report(self) -> None:
        out("\n## Steps\n")
        out("| step | seconds | status |\n|---|---:|---|")
        for name, seconds, status in self.rows:
            out(f"| {name} | {seconds:.1f} | {status} |")
        out(f"\nTotal: {time.perf_counter() - self.start:.1f} s")


# --------------------------------------------------------------------------------------------
# Scenes and models
# --------------------------------------------------------------------------------------------


def scene(workdir: Path, size: int, seed: int) -> Path:
    """A cached, seeded ``size²`` 3-band uint8 GeoTIFF (tiled 512², deflate).

    Up to 4096² it is ``tilerun.sample``'s scene; larger ones are mirrored copies of the 4096²
    scene (seamless, and never whole in memory), written with GDAL's multithreaded deflate.
    """
    path = workdir / f"scene-{size}-seed{seed}.tif"
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.tif")
    t0 = time.perf_counter()
    if size <= BASE_TILE:
        write_scene(tmp, size, size, seed=seed)
    else:
        _write_mirrored(tmp, size, make_scene(BASE_TILE, BASE_TILE, seed).image)
    os.replace(tmp, path)
    log(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    return path


def _write_mirrored(path: Path, size: int, base: np.ndarray) -> None:
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from tilerun.sample import CRS, ORIGIN, PIXEL_SIZE

    edge = base.shape[1]
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": BANDS, "dtype": "uint8",
        "crs": CRS, "transform": from_origin(*ORIGIN, PIXEL_SIZE, PIXEL_SIZE),
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate",
        "photometric": "RGB", "BIGTIFF": "IF_SAFER", "NUM_THREADS": "ALL_CPUS",
    }
    with rasterio.open(path, "w", **profile) as dst:
        for i, y0 in enumerate(range(0, size, edge)):
            for j, x0 in enumerate(range(0, size, edge)):
                block = base[:, :: -1 if i % 2 else 1, :: -1 if j % 2 else 1]
                h, w = min(edge, size - y0), min(edge, size - x0)
                dst.write(np.ascontiguousarray(block[:, :h, :w]), window=Window(x0, y0, w, h))


def build_model(base: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_unet("unet", in_channels=BANDS, classes=CLASSES, base=base, depth=DEPTH)
    return model.eval()


def run_once(
    source: Path, model: torch.nn.Module, out_path: Path, options: PredictOptions
) -> tuple[RunSummary, float]:
    """``tilerun.run`` and its wall time."""
    t0 = time.perf_counter()
    summary = tilerun.run(source, model, out_path, options)
    return summary, time.perf_counter() - t0


def read_logits(path: Path) -> np.ndarray:
    import xarray as xr

    with xr.open_zarr(path) as ds:
        return np.asarray(ds.logits.values, np.float64)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------
# Correctness
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    name: str
    max_abs_diff: float
    max_abs_ref: float
    goal: float

    @property
    def rel(self) -> float:
        return self.max_abs_diff / self.max_abs_ref if self.max_abs_ref > 0 else float("inf")

    @property
    def passed(self) -> bool:
        return self.rel <= self.goal


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@dataclass(frozen=True)
class Check:
    """The comparisons, and the default run's logits (``cfg.device`` at ``cfg.precision``,
    backend ``auto``) that the backend rows are compared with, and the backend it used."""

    rows: list[Comparison]
    default: np.ndarray
    default_backend: str


def correctness(cfg: Config, source: Path) -> Check:
    model = build_model(CHECK_BASE)

    def run(device: str, precision: str) -> tuple[RunSummary, np.ndarray]:
        return _logits(cfg, source, model, device, precision)

    ref = run("cpu", "fp32")[1]
    max_ref = float(np.nanmax(np.abs(ref)))

    def compare(name: str, got: np.ndarray, goal: float) -> Comparison:
        return Comparison(name, float(np.nanmax(np.abs(got - ref))), max_ref, goal)

    fp32 = run(cfg.device, "fp32")
    rows = [compare(f"{cfg.device} fp32 vs cpu fp32", fp32[1], FP32_GOAL)]
    if cfg.cuda and torch.backends.cudnn.allow_tf32:
        with tf32(False):
            rows.append(compare(f"{cfg.device} fp32, TF32 off, vs cpu fp32",
                                run(cfg.device, "fp32")[1], FP32_GOAL))
    bf16 = run(cfg.device, "bf16")
    rows.append(compare(f"{cfg.device} bf16 vs cpu fp32", bf16[1], BF16_GOAL))
    default = {"fp32": fp32, "bf16": bf16}.get(cfg.precision) or run(cfg.device, cfg.precision)
    return Check(rows, default[1], default[0].backend)


def _logits(cfg: Config, source: Path, model: torch.nn.Module, device: str,
            precision: str, backend: str = "auto") -> tuple[RunSummary, np.ndarray]:
    """One run on the correctness scene: its summary and its logits."""
    path = cfg.workdir / f"check-{device.replace(':', '')}-{precision}-{backend}.zarr"
    try:
        summary, _ = run_once(source, model, path, cfg.options(device, precision, backend))
        return summary, read_logits(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def report_correctness(cfg: Config, rows: list[Comparison]) -> None:
    out(f"\n## Correctness ({cfg.check_size}² scene, U-Net base {CHECK_BASE}, tile {cfg.tile}, "
        f"overlap {cfg.overlap})\n")
    out("| comparison | max abs diff | max abs cpu | rel. error | goal | result |")
    out("|---|---:|---:|---:|---:|---|")
    for r in rows:
        verdict = "pass" if r.passed else "**miss**"
        out(f"| {r.name} | {r.max_abs_diff:.3g} | {r.max_abs_ref:.3g} | {r.rel:.2e} | "
            f"≤ {r.goal:g} | {verdict} |")


# --------------------------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------------------------


class BusySampler:
    """Mean GPU utilisation (%) over a stretch of time, sampled every 0.2 s in a thread."""

    def __init__(self, device: str) -> None:
        self.device = torch.device(device)
        self._smi_id = ""
        self.method = self._pick_method()
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _pick_method(self) -> str:
        """``nvml`` (torch + pynvml), else ``nvidia-smi`` (by GPU UUID, else index), else none."""
        if self.device.type != "cuda":
            return "none"
        try:
            torch.cuda.utilization(self.device)
            return "nvml"
        except Exception:  # pynvml missing, or NVML unusable
            pass
        if shutil.which("nvidia-smi"):
            for smi_id in (_gpu_uuid(self.device), str(self.device.index or 0)):
                with contextlib.suppress(Exception):
                    _smi_utilization(smi_id)
                    self._smi_id = smi_id
                    return f"nvidia-smi --id={smi_id}"
        return "none"

    def _read(self) -> float | None:
        if self.method == "nvml":
            return float(torch.cuda.utilization(self.device))
        if self.method.startswith("nvidia-smi"):
            return _smi_utilization(self._smi_id)
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                value = self._read()
                if value is not None:
                    self._samples.append(value)
            self._stop.wait(SAMPLE_PERIOD_S)

    def __enter__(self) -> BusySampler:
        if self.method != "none":
            self._thread = threading.Thread(target=self._loop, daemon=True, name="busy-sampler")
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self._samples)) if self._samples else None


def _gpu_uuid(device: torch.device) -> str:
    """The GPU's UUID as nvidia-smi spells it (CUDA_VISIBLE_DEVICES renumbers indices)."""
    uuid = str(getattr(torch.cuda.get_device_properties(device), "uuid", ""))
    return uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"


def _smi_utilization(smi_id: str) -> float:
    cmd = ["nvidia-smi", f"--id={smi_id}", "--query-gpu=utilization.gpu",
           "--format=csv,noheader,nounits"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=True)
    return float(done.stdout.split()[0])


@dataclass
class Row:
    base: int
    params: int
    backend: str = "auto"
    summary: RunSummary | None = None
    wall_s: float = 0.0
    busy_run: float | None = None
    peak_gib: float | None = None
    forwards: str = ""
    model_s: float | None = None
    timed: int = 0
    busy_model: float | None = None


def warm_up(cfg: Config, model: torch.nn.Module, source: Path,
            backend: str = "auto") -> RunSummary:
    path = cfg.workdir / f"warmup-{backend}.zarr"
    try:
        return run_once(source, model, path, cfg.options(backend=backend))[0]
    finally:
        shutil.rmtree(path, ignore_errors=True)


def end_to_end(cfg: Config, row: Row, model: torch.nn.Module, source: Path) -> None:
    path = cfg.workdir / f"out-base{row.base}-{row.backend}.zarr"
    if cfg.cuda:
        torch.cuda.reset_peak_memory_stats(cfg.device)
    try:
        with BusySampler(cfg.device) as busy:
            row.summary, row.wall_s = run_once(source, model, path,
                                               cfg.options(backend=row.backend))
    finally:
        shutil.rmtree(path, ignore_errors=True)
    batches = row.summary.batches if row.summary is not None else {}
    row.forwards = " ".join(f"{n}×{k}" for n, k in sorted(batches.items(), reverse=True))
    row.busy_run = busy.mean
    if cfg.cuda:
        row.peak_gib = torch.cuda.max_memory_allocated(cfg.device) / 2**30


def model_only(cfg: Config, row: Row, model: torch.nn.Module) -> None:
    """Time full batches of random tiles through the model alone; scale to ``tiles_run``."""
    assert row.summary is not None
    tiles = row.summary.tiles_run
    b = cfg.batch_size
    timed = min(max(math.ceil(tiles / b), cfg.min_batches), cfg.max_batches)
    model = model.to(cfg.device)
    gen = torch.Generator(device=cfg.device).manual_seed(1)
    inputs = [torch.randn((b, BANDS, cfg.tile, cfg.tile), generator=gen, device=cfg.device)
              for _ in range(2)]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    autocast = (torch.autocast(torch.device(cfg.device).type, dtype=dtype) if dtype
                else contextlib.nullcontext())
    with torch.inference_mode(), autocast:
        for i in range(cfg.warmup_batches):
            model(inputs[i % 2])
        synchronize(cfg.device)
        with BusySampler(cfg.device) as busy:
            t0 = time.perf_counter()
            for i in range(timed):
                model(inputs[i % 2])
            synchronize(cfg.device)
            seconds = time.perf_counter() - t0
    row.model_s = seconds / (timed * b) * tiles
    row.timed = timed
    row.busy_model = busy.mean


def throughput(cfg: Config, steps: Steps, base: int, warm: Path, big: Path) -> Row:
    model = build_model(base)
    row = Row(base, sum(p.numel() for p in model.parameters()))
    steps.run(f"base {base}: warm-up run ({cfg.warmup_size}²)",
              lambda: warm_up(cfg, model, warm))
    steps.run(f"base {base}: end-to-end run ({cfg.scene_size}²)",
              lambda: end_to_end(cfg, row, model, big))
    if row.summary is not None:
        steps.run(f"base {base}: model only", lambda: model_only(cfg, row, model))
    return row


def throughput_header(cfg: Config) -> None:
    out(f"\n## Throughput ({cfg.scene_size}² scene, {cfg.precision}, tile {cfg.tile}, overlap "
        f"{cfg.overlap}, batch {cfg.batch_size}, chunk {cfg.chunk}, threads {cfg.threads})\n")
    out("| U-Net | params | tiles | model-only s (timed batches) | end-to-end s | engine s | "
        f"kept (goal ≥ {KEPT_GOAL:.2f}) | GPU busy % run | GPU busy % model-only | Mpx/s | "
        "peak GiB | forward calls |")
    out("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")


def _row(cfg: Config, r: Row) -> str:
    s = r.summary
    if s is None:
        return f"| base {r.base} | {r.params / 1e6:.2f} M | – | – | – | – | – | – | – | – | – | – |"
    kept = r.model_s / r.wall_s if r.model_s is not None else None
    kept_text = "–" if kept is None else (
        f"{kept:.3f} {'pass' if kept >= KEPT_GOAL else '**miss**'}")
    model_text = "–" if r.model_s is None else f"{r.model_s:.2f} ({r.timed})"
    mpx = cfg.scene_size**2 / r.wall_s / 1e6
    return (f"| base {r.base} | {r.params / 1e6:.2f} M | {s.tiles_run} | {model_text} | "
            f"{r.wall_s:.2f} | {s.seconds:.2f} | {kept_text} | {_pct(r.busy_run)} | "
            f"{_pct(r.busy_model)} | {mpx:.2f} | {_num(r.peak_gib)} | {r.forwards} |")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


@dataclass
class BackendRow:
    """One backend's row: its correctness-scene run, warm-up run and timed run."""

    row: Row
    note: str = ""
    check: RunSummary | None = None
    warm: RunSummary | None = None
    max_abs_diff: float | None = None
    max_abs_default: float = 0.0

    @property
    def summaries(self) -> list[RunSummary]:
        return [s for s in (self.check, self.warm, self.row.summary) if s is not None]


def unavailable(cfg: Config, name: str, model: torch.nn.Module) -> str | None:
    """Why ``name`` cannot run here at all (``None``: it can), as tilerun would say."""
    target = Target(torch.device(cfg.device), cfg.precision, BANDS, cfg.tile, cfg.batch_size,
                    cfg.threads)
    backend = BACKENDS.get(name)
    return None if backend is None else backend.unavailable(as_model(model), target)


def backend_check(cfg: Config, b: BackendRow, default: np.ndarray, source: Path) -> None:
    """The check model on the correctness scene with this backend, against the default run."""
    model = build_model(CHECK_BASE)
    b.check, got = _logits(cfg, source, model, cfg.device, cfg.precision, b.row.backend)
    b.max_abs_diff = float(np.nanmax(np.abs(got - default)))
    b.max_abs_default = float(np.nanmax(np.abs(default)))


def backend_row(cfg: Config, steps: Steps, name: str, default: np.ndarray | None,
                paths: dict[str, Path]) -> BackendRow:
    model = build_model(cfg.backend_size)
    b = BackendRow(Row(cfg.backend_size, sum(p.numel() for p in model.parameters()), name))
    step = f"backend {name} (base {cfg.backend_size})"
    need = BACKEND_NEED_S.get(name, DEFAULT_NEED_S)
    why = unavailable(cfg, name, model)
    if why is None and steps.left() < need:
        why = f"needs ~{need:.0f} s, {max(steps.left(), 0):.0f} s of the budget left"
    if why is not None:
        b.note = f"skipped: {why}"
        steps.skip(step, why)
        return b
    if default is not None:
        steps.run(f"{step}: correctness scene ({cfg.check_size}², base {CHECK_BASE})",
                  lambda: backend_check(cfg, b, default, paths["check"]))
    b.warm = steps.run(f"{step}: warm-up run ({cfg.warmup_size}²)",
                       lambda: warm_up(cfg, model, paths["warm"], name))
    steps.run(f"{step}: end-to-end run ({cfg.scene_size}²)",
              lambda: end_to_end(cfg, b.row, model, paths["big"]))
    return b


def backends_header(cfg: Config, check: Check | None) -> None:
    default = f"auto → {check.default_backend}" if check else "not run"
    out(f"\n## Backends (U-Net base {cfg.backend_size}, {cfg.scene_size}² scene, "
        f"{cfg.precision}; max |Δ| on the correctness scene, base {CHECK_BASE}, vs the "
        f"default run: {default})\n")
    out("| backend | used | backend s (check / warm-up / timed) | tiles | end-to-end s | "
        "engine s | × default | GPU busy % run | Mpx/s | peak GiB | max abs Δ vs default "
        "(rel.) | forward calls |")
    out("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")


def _backend_row(cfg: Config, b: BackendRow, default: Row | None) -> str:
    r, s = b.row, b.row.summary
    used = list(dict.fromkeys(x.backend for x in b.summaries))
    used_text = b.note or ", ".join(u if u == r.backend else f"**{u}**" for u in used) or "–"
    seconds = " / ".join("–" if x is None else f"{x.backend_seconds:.1f}"
                         for x in (b.check, b.warm, s))
    diff = "–" if b.max_abs_diff is None else (
        f"{b.max_abs_diff:.3g} ({b.max_abs_diff / b.max_abs_default:.1e})"
        if b.max_abs_default > 0 else f"{b.max_abs_diff:.3g}")
    if s is None:
        return f"| {r.backend} | {used_text} | {seconds} | – | – | – | – | – | – | – | {diff} | – |"
    speedup = "–" if default is None or default.summary is None else (
        f"{default.wall_s / r.wall_s:.2f}")
    mpx = cfg.scene_size**2 / r.wall_s / 1e6
    return (f"| {r.backend} | {used_text} | {seconds} | {s.tiles_run} | {r.wall_s:.2f} | "
            f"{s.seconds:.2f} | {speedup} | {_pct(r.busy_run)} | {mpx:.2f} | "
            f"{_num(r.peak_gib)} | {diff} | {r.forwards} |")


# --------------------------------------------------------------------------------------------
# Header and main
# --------------------------------------------------------------------------------------------


def header(cfg: Config) -> None:
    cuda = torch.version.cuda or "none"
    gpu = torch.cuda.get_device_name(cfg.device) if cfg.cuda else "none (cpu run)"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    out("# tilerun GPU check\n")
    out(f"* date: {dt.datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}")
    out(f"* device: {cfg.device}; GPU: {gpu}")
    out(f"* torch {torch.__version__} (CUDA {cuda}, cuDNN {cudnn}); tilerun "
        f"{tilerun.__version__}; Python {sys.version.split()[0]}")
    out(f"* CPUs: {os.cpu_count()}; torch CPU threads: {torch.get_num_threads()}")
    out(f"* cudnn.benchmark {torch.backends.cudnn.benchmark}, cudnn.allow_tf32 "
        f"{torch.backends.cudnn.allow_tf32}, matmul.allow_tf32 "
        f"{torch.backends.cuda.matmul.allow_tf32}")
    out(f"* GPU busy sampling: {BusySampler(cfg.device).method}")
    out(f"* workdir: {cfg.workdir}; time budget {cfg.budget_s:.0f} s")


def _interrupt(signum: int, _frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def measure(cfg: Config, steps: Steps) -> None:
    paths: dict[str, Path] = {}

    def scenes() -> None:
        paths["check"] = scene(cfg.workdir, cfg.check_size, cfg.seed)
        paths["warm"] = scene(cfg.workdir, cfg.warmup_size, cfg.seed)
        paths["big"] = scene(cfg.workdir, cfg.scene_size, cfg.seed)

    steps.run("scenes", scenes)
    if len(paths) < 3:
        return
    check = steps.run("correctness", lambda: correctness(cfg, paths["check"]))
    if check:
        report_correctness(cfg, check.rows)
    throughput_header(cfg)
    rows: dict[int, Row] = {}
    for base in cfg.sizes:
        rows[base] = throughput(cfg, steps, base, paths["warm"], paths["big"])
        out(_row(cfg, rows[base]))
        free(cfg)
    if cfg.backends:
        backends_header(cfg, check)
    for name in cfg.backends:
        b = backend_row(cfg, steps, name, check.default if check else None, paths)
        out(_backend_row(cfg, b, rows.get(cfg.backend_size)))
        free(cfg)


def free(cfg: Config) -> None:
    """The model is gone; free its cached GPU blocks."""
    if cfg.cuda:
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    if cfg.cuda and not torch.cuda.is_available():
        print(f"CUDA is not available (torch {torch.__version__}); nothing to check "
              "(use --device cpu --quick for a CPU smoke test)")
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    steps = Steps(cfg.budget_s)
    header(cfg)
    try:
        measure(cfg, steps)
    except Interrupted as why:
        out(f"\n**Interrupted ({why}); the report is partial.**")
        steps.report()
        return 124
    steps.report()
    return 1 if steps.crashed else 0


if __name__ == "__main__":
    sys.exit(main())
