"""The GPU check's throughput rows: end-to-end against model-only, GPU busy (see
``gpu_check.py``)."""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _gpu_setup import (
    BANDS,
    KEPT_GOAL,
    SAMPLE_PERIOD_S,
    Config,
    Steps,
    build_model,
    out,
    run_once,
    synchronize,
)

from tilerun.engine import RunSummary

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


def throughput_row(cfg: Config, r: Row) -> str:
    s = r.summary
    if s is None:
        return f"| base {r.base} | {r.params / 1e6:.2f} M | – | – | – | – | – | – | – | – | – | – |"
    kept = r.model_s / r.wall_s if r.model_s is not None else None
    kept_text = "–" if kept is None else (
        f"{kept:.3f} {'pass' if kept >= KEPT_GOAL else '**miss**'}")
    model_text = "–" if r.model_s is None else f"{r.model_s:.2f} ({r.timed})"
    mpx = cfg.scene_size**2 / r.wall_s / 1e6
    return (f"| base {r.base} | {r.params / 1e6:.2f} M | {s.tiles_run} | {model_text} | "
            f"{r.wall_s:.2f} | {s.seconds:.2f} | {kept_text} | {pct(r.busy_run)} | "
            f"{pct(r.busy_model)} | {mpx:.2f} | {num(r.peak_gib)} | {r.forwards} |")


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
