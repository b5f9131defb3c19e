"""The GPU check's backend rows: each backend asked for explicitly (see ``gpu_check.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _gpu_correctness import Check, check_logits
from _gpu_setup import (
    BACKEND_NEED_S,
    BANDS,
    CHECK_BASE,
    DEFAULT_NEED_S,
    Config,
    Steps,
    build_model,
    out,
)
from _gpu_throughput import Row, end_to_end, num, pct, warm_up

from tilerun.backends import BACKENDS, Target
from tilerun.engine import RunSummary
from tilerun.models import as_model

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
    b.check, got = check_logits(cfg, source, model, cfg.device, cfg.precision, b.row.backend)
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


def backend_line(cfg: Config, b: BackendRow, default: Row | None) -> str:
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
            f"{s.seconds:.2f} | {speedup} | {pct(r.busy_run)} | {mpx:.2f} | "
            f"{num(r.peak_gib)} | {diff} | {r.forwards} |")
