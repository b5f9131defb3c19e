#!/usr/bin/env python
"""Many scenes in one job against one big scene of the same content (issue 19).

Usage::

    python benchmarks/bench_collections.py                 # small: 16 × 512² vs 2048² (~2 min)
    python benchmarks/bench_collections.py --size full     # 16 × 1024² vs 4096² (the issue's)
    python benchmarks/bench_collections.py --repeats 1 --loop-scenes 2

What it measures, in one invocation (every run a fresh subprocess, so that each pays the same
imports outside the clock and reports its own peak RSS):

* **wall(16 small) ÷ wall(1 big)**: ``tilerun.predict_many`` over the 16 scenes cut from the
  big one (the same pixels) against ``predict_many`` over the big scene alone; same model (the
  bundled demo U-Net), tile 256, overlap 0, so both run the same tiles. The clock includes
  loading the model and choosing its backend (``torch``), once per job; each process first
  runs the same one-scene warm-up job (256²) outside the clock. Goal ≤ 1.10. The lower wall
  of ``--repeats`` alternating runs is taken for each.
* **per-scene overhead**: (wall(16 small) − wall(1 big)) ÷ 16, in seconds.
* **a shell loop**: ``python -m tilerun predict`` once per scene (what a user does without
  jobs), run for ``--loop-scenes`` scenes and scaled to 16, ÷ wall(1 big), printed beside.
* **peak RSS flat in the number of scenes**: a job of 64 scenes ÷ a job of 16 (goal ≤ 1.1),
  each the mean over the ``--repeats`` runs (one run's peak varies by about ±10 % here);
  the peak is the process's ``VmHWM``.

Internally the script re-invokes itself with ``--child``; that flag is not for direct use.
"""

from __future__ import annotations

import argparse
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

SIZES = {"small": 512, "full": 1024}
SCENES = 16
MANY = 64
RATIO_GOAL = 1.10
RSS_GOAL = 1.10
OPTIONS = {"tile": 256, "overlap": 0, "backend": "torch", "tissue": "none", "pyramid": "none"}


def _write_scenes(workdir: Path, edge: int, count: int) -> tuple[Path, Path]:
    """The big scene (``4·edge``², seeded) and ``count`` scenes of ``edge``² cut from it
    (cycling over its 16 windows when ``count`` > 16), cached in ``workdir``."""
    import rasterio
    from rasterio.windows import Window

    from tilerun.sample import write_scene

    big = workdir / f"big-{4 * edge}.tif"
    if not big.is_file():
        write_scene(big, 4 * edge, 4 * edge, seed=19)
    if not (workdir / "warm-256.tif").is_file():
        write_scene(workdir / "warm-256.tif", 256, 256, seed=7)
    small = workdir / f"small-{edge}-{count}"
    if not (small / f"s{count - 1:03d}.tif").is_file():
        small.mkdir(exist_ok=True)
        with rasterio.open(big) as src:
            for n in range(count):
                k = n % SCENES
                window = Window((k % 4) * edge, (k // 4) * edge, edge, edge)
                profile = {**src.profile, "height": edge, "width": edge,
                           "transform": src.window_transform(window)}
                with rasterio.open(small / f"s{n:03d}.tif", "w", **profile) as dst:
                    dst.write(src.read(window=window))
    return big, small


def _child(inputs: str, out: str) -> None:
    import shutil

    import tilerun

    # Warm-up (imports, the model's first calls, Zarr's event loop), the same for every run:
    # one 256² scene. On this machine a fresh process's first seconds are slower whatever it
    # runs, which would land on whichever part of the job comes first.
    warm = Path(out).with_name(Path(out).name + "-warm")
    tilerun.predict_many(next(Path(inputs).parent.glob("warm-*.tif")), "demo", warm,
                         tilerun.PredictOptions(**OPTIONS))
    shutil.rmtree(warm)
    start = time.perf_counter()
    summary = tilerun.predict_many(inputs, "demo", out, tilerun.PredictOptions(**OPTIONS))
    wall = time.perf_counter() - start
    rss = _peak_rss_mib()
    print(json.dumps({"wall": wall, "rss_mib": rss, "tiles": summary.tiles,
                      "scenes": summary.count("done"), "prepare": summary.prepare_seconds}))


def _peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_child(inputs: Path, out: Path) -> dict[str, Any]:
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, __file__, "--child", str(inputs), str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _shell_loop(scenes: list[Path], out: Path) -> float:
    """Seconds for ``python -m tilerun predict`` once per scene, as a shell loop would."""
    out.mkdir(exist_ok=True)
    flags = ["--tile", "256", "--overlap", "0", "--backend", "torch", "--tissue", "none",
             "--pyramid", "none", "--quiet", "--overwrite"]
    start = time.perf_counter()
    for scene in scenes:
        subprocess.run([sys.executable, "-m", "tilerun", "predict", str(scene), "-o",
                        str(out / f"{scene.stem}.zarr"), *flags], check=True,
                       capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tilerun-bench-collections"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--loop-scenes", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    edge = SIZES[args.size]
    args.workdir.mkdir(parents=True, exist_ok=True)
    big, small = _write_scenes(args.workdir, edge, SCENES)
    _, many = _write_scenes(args.workdir, edge, MANY)
    walls: dict[str, list[float]] = {"big": [], "small": [], "many": []}
    peaks: dict[str, list[float]] = {"big": [], "small": [], "many": []}
    rows: dict[str, dict[str, Any]] = {}
    for _ in range(args.repeats):
        for name, inputs in (("big", big), ("small", small), ("many", many)):
            row = _run_child(inputs, args.workdir / f"out-{name}")
            walls[name].append(row["wall"])
            peaks[name].append(row["rss_mib"])
            rows[name] = row
    for name, row in rows.items():  # peak RSS varies by ±10 % between runs: their mean
        row["rss_mib"] = sum(peaks[name]) / len(peaks[name])
    scenes = sorted(small.glob("*.tif"))[: args.loop_scenes]
    loop = _shell_loop(scenes, args.workdir / "out-loop") * SCENES / len(scenes)
    _report(args, edge, walls, peaks, rows, loop, len(scenes))


def _report(args: argparse.Namespace, edge: int, walls: dict[str, list[float]],
            peaks: dict[str, list[float]], rows: dict[str, dict[str, Any]], loop: float,
            looped: int) -> None:
    big, small = min(walls["big"]), min(walls["small"])
    ratio = small / big
    rss = rows["many"]["rss_mib"] / rows["small"]["rss_mib"]
    print(f"# bench_collections {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.node()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"# {SCENES} scenes of {edge}² vs one {4 * edge}² scene; demo U-Net, tile 256, "
          f"overlap 0, backend torch; lower wall of {args.repeats} alternating runs")
    print("| run | wall s | tiles | peak RSS MiB | ÷ 1 big |")
    print("|---|---:|---:|---:|---:|")
    print(f"| 1 scene of {4 * edge}² | {big:.2f} | {rows['big']['tiles']} | "
          f"{rows['big']['rss_mib']:.0f} | 1.00 |")
    print(f"| job of {SCENES} scenes of {edge}² | {small:.2f} | {rows['small']['tiles']} | "
          f"{rows['small']['rss_mib']:.0f} | **{ratio:.2f}** |")
    print(f"| job of {MANY} scenes of {edge}² | {min(walls['many']):.2f} | "
          f"{rows['many']['tiles']} | {rows['many']['rss_mib']:.0f} | – |")
    print(f"| shell loop, {SCENES} × `tilerun predict` (measured on {looped}, scaled) | "
          f"{loop:.2f} | {rows['small']['tiles']} | – | {loop / big:.2f} |")
    print(f"per-scene overhead: {(small - big) / SCENES:+.3f} s "
          f"(job vs big; shell loop: {(loop - big) / SCENES:.2f} s)")
    print(f"wall(16 small) ÷ wall(1 big) = {ratio:.2f} (goal ≤ {RATIO_GOAL}) "
          f"{'PASS' if ratio <= RATIO_GOAL else 'FAIL'}")
    print(f"peak RSS {MANY} ÷ {SCENES} scenes = {rss:.2f} (goal ≤ {RSS_GOAL}) "
          f"{'PASS' if rss <= RSS_GOAL else 'FAIL'}")
    print(f"all walls: big {', '.join(f'{w:.2f}' for w in walls['big'])}; "
          f"small {', '.join(f'{w:.2f}' for w in walls['small'])}; peak RSS MiB: "
          + "; ".join(f"{k} {', '.join(f'{v:.0f}' for v in peaks[k])}" for k in peaks))


if __name__ == "__main__":
    main()
