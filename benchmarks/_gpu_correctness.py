"""The GPU check's correctness rows: GPU logits against CPU fp32 (see ``gpu_check.py``)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _gpu_setup import (
    BF16_GOAL,
    CHECK_BASE,
    FP32_GOAL,
    Config,
    build_model,
    out,
    read_logits,
    run_once,
)

from tilerun.engine import RunSummary

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
        return check_logits(cfg, source, model, device, precision)

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


def check_logits(cfg: Config, source: Path, model: torch.nn.Module, device: str,
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
