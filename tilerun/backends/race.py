"""``auto`` races the backends that passed the exactness check and remembers the winner.

Which runtime is fastest depends on the CPU, the model and the thread count: measured on one
2-vCPU VM for a U-Net (base 16, depth 4, batch 8×256²), OpenVINO f32 and ONNX Runtime swapped
places between runs (0.21–0.29 s against 0.29–0.35 s per batch). So the first run times each
exact candidate on a full batch (one warm-up, then the best of :data:`ROUNDS`) and writes the
winner to ``<cache>/choices/<key>.json``; later runs with the same model, input shape,
precision, threads and CPU load only the winner.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Collection
from pathlib import Path

import torch

from tilerun.backends.base import Compiled, Target
from tilerun.backends.cache import cache_dir, cached_file, model_key
from tilerun.models import ModelHandle

ROUNDS = 2


def full_batch(example: torch.Tensor, batch: int) -> torch.Tensor:
    """``example``'s tiles repeated to ``batch`` tiles."""
    repeats = -(-batch // int(example.shape[0]))
    return example.repeat(repeats, 1, 1, 1)[:batch].contiguous()


def seconds_per_batch(compiled: Compiled, x: torch.Tensor) -> float:
    """The best of :data:`ROUNDS` timed runs after one warm-up."""
    with torch.inference_mode():
        compiled.run(x)
        best = float("inf")
        for _ in range(ROUNDS):
            start = time.perf_counter()
            compiled.run(x)
            best = min(best, time.perf_counter() - start)
    return best


def race(candidates: dict[str, Compiled], x: torch.Tensor) -> dict[str, float]:
    """Seconds per batch of each candidate, on the same full batch ``x``."""
    return {name: seconds_per_batch(compiled, x) for name, compiled in candidates.items()}


def fallback_only(name: str, target: Target, passed: Collection[str]) -> bool:
    """Whether ``auto`` skips ``name`` because a faster candidate already passed: eager torch
    on a CPU is the fallback, not a racer. Built for inference (fused, static shapes), ONNX
    Runtime and OpenVINO ran a batch 1.4-1.5× (U-Net base 16, benchmarks/RESULTS.md) to 2.7×
    (the demo model) faster than eager torch on the 2-core VM, and checking and racing torch
    too took about half of a cold ``auto`` choice (3.5 of 5 s there)."""
    return name == "torch" and target.device.type == "cpu" and bool(passed)


def choice_note(wanted: str, candidates: tuple[str, ...], racing: bool, target: Target) -> str:
    """A word on how the backend is being chosen, for the progress bar and the summary."""
    if wanted != "auto":
        return f"{wanted}, asked for"
    if not candidates:
        return "none installed"
    if not racing:
        return f"cached choice: {candidates[0]}"
    racers = [n for n in candidates if not fallback_only(n, target, ("",))] or list(candidates)
    verb = "checking and racing" if len(racers) > 1 else "checking"
    spare = ", eager torch if none matches" if len(racers) < len(candidates) else ""
    return f"{verb} {', '.join(racers)}{spare}"


def _cpu() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), for keying remembered choices."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _choice_file(model: ModelHandle, target: Target) -> Path:
    key = model_key(model, "choice", target.bands, target.tile, target.batch, target.precision,
                    target.threads, target.device.type, _cpu(), os.cpu_count())
    return cache_dir("choices") / f"{key}.json"


def remembered(model: ModelHandle, target: Target) -> str | None:
    """The backend an earlier race chose for this model and target, if any."""
    try:
        data = json.loads(_choice_file(model, target).read_text())
    except (OSError, ValueError):
        return None
    chosen = data.get("backend") if isinstance(data, dict) else None
    return chosen if isinstance(chosen, str) else None


def remember(model: ModelHandle, target: Target, timings: dict[str, float]) -> None:
    """Record the race's winner (and the times, for whoever looks)."""
    winner = min(timings, key=timings.__getitem__)
    text = json.dumps({"backend": winner, "seconds_per_batch": timings}, indent=1)
    path = _choice_file(model, target)
    path.unlink(missing_ok=True)
    cached_file(path, lambda out: _write(out, text))


def _write(path: Path, text: str) -> None:
    path.write_text(text)
