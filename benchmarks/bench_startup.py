#!/usr/bin/env python
"""Time to the first tile: ``tilerun predict`` on a 256² scene (4 tiles), cold and cached.

Usage::

    python benchmarks/bench_startup.py              # 3 rounds
    python benchmarks/bench_startup.py --rounds 5

Each round runs the command as a user does (a fresh process, the bundled demo model, the
default ``--backend auto``) twice with one new ``TILERUN_CACHE_DIR``: ``cold`` (nothing
converted or chosen yet) and ``cached``. From the summary line's phases it reports the wall
time, the time to the first tile (everything before ``work``: start-up, opening, model,
backend, planning) and the exit (wall time after the summary is printed: the interpreter's
own shutdown). Goals (issue 20): first tile ≤ 2 s cached; the ``backend`` phase ≤ 3 s cold on
a 2-core machine. Medians over the rounds; the load average is printed because this machine
is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASE = re.compile(r"(start-up|opening|model|backend|planning|work|finishing|other) ([\d.]+)")


def run_once(folder: Path, cache: Path, out: str) -> dict[str, float]:
    env = {**os.environ, "TILERUN_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tilerun", "predict", "scene.tif", "-o", out],
                            cwd=folder, env=env, stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    printed = time.perf_counter() - start
    proc.wait()
    wall = time.perf_counter() - start
    phases = {name: float(value) for name, value in PHASE.findall(line)}
    first = sum(v for k, v in phases.items() if k not in ("work", "finishing", "other"))
    return {"wall_s": wall, "first_tile_s": first, "backend_s": phases.get("backend", 0.0),
            "start_up_s": phases.get("start-up", 0.0), "exit_s": wall - printed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run([sys.executable, "-m", "tilerun", "sample", "scene.tif", "--size", "256"],
                       cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
                       capture_output=True)
        rows: dict[str, list[dict[str, float]]] = {"cold": [], "cached": []}
        for r in range(args.rounds):
            cache = folder / f"cache-{r}"
            for kind in ("cold", "cached"):
                rows[kind].append(run_once(folder, cache, f"{kind}-{r}.zarr"))
    for kind, runs in rows.items():
        medians = {k: round(statistics.median(run[k] for run in runs), 2) for k in runs[0]}
        print(json.dumps({"run": kind, **medians, "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
