"""Helpers every benchmark shares: log lines, peak RSS, CPU time, how busy the machine was,
the machine's description, pass/miss verdicts and the child-process JSON protocol.

Benchmarks run as scripts (``python benchmarks/NAME.py``), so this folder is on ``sys.path``
and they import this module as ``_common``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


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


def peak_rss_mib() -> float:
    """Peak RSS of this process or of any process it waited for, whichever is larger."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(maxrss_mib(), children / 2**20 if sys.platform == "darwin" else children / 1024)


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


def verdict(ok: bool) -> str:
    return "pass" if ok else "**MISS**"


def share(x: float | None) -> str:
    """A share of the CPU as a percentage, ``n/a`` when unknown."""
    return "n/a" if x is None else f"{100 * x:.0f} %"


def spawn_json(script: str | Path, args: list[str], env: dict[str, str] | None = None
               ) -> dict[str, Any] | None:
    """Run ``script`` with ``args`` in a fresh interpreter; its last stdout line is a JSON
    result (None when the child failed or printed nothing)."""
    cmd = [sys.executable, str(Path(script).resolve()), *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        log(f"child {args[:2]} failed with exit status {proc.returncode}")
        return None
    return json.loads(lines[-1])


class Meter:
    """Wall and process CPU seconds of a block (``with Meter() as m: …``, then ``m.wall``,
    ``m.cpu``)."""

    def __enter__(self) -> Meter:
        self.wall0, self.cpu0 = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *_: Any) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = cpu_seconds() - self.cpu0
