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
import datetime as dt
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from _common import (
    fmt,
    log,
    machine,
    share,
    spawn_json,
    verdict,
)
from _engine_child import BATCH, CLASSES, MODEL_SEED, OVERLAP, TILE, child_model, child_run
from _scene import BANDS, SCENE_VERSION, make_scene

RATIO_GOAL = 1.05
RSS_GOAL = 1.25
#: above this share of the CPU used by other processes, the wall-time ratio is flagged unreliable
BUSY_LIMIT = 0.05
FULL_SIZES = [4096, 8192, 16384]
QUICK_SIZES = [1024, 2048]


def spawn(args: list[str]) -> dict[str, Any]:
    """Run this script as a child with ``args``; its last stdout line is a JSON result."""
    result = spawn_json(__file__, args)
    if result is None:
        raise SystemExit(f"child {args} failed")
    return result


# --------------------------------------------------------------------------------------------
# Parent: orchestrate and report
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help=f"scene edges (default {FULL_SIZES})")
    parser.add_argument("--quick", action="store_true", help=f"smoke check: sizes {QUICK_SIZES}")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tilerun-bench"))
    parser.add_argument("--seed", type=int, default=0, help="scene seed")
    parser.add_argument("--ratio-size", type=int,
                        help="scene for the overhead ratio (default 8192; --quick: largest)")
    parser.add_argument("--model-batches", type=int,
                        help="timed model-only batches per sample (default 30; quick 4)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed model-only warm-up batches")
    parser.add_argument("--json", type=Path, help="also write all raw results to this JSON file")
    parser.add_argument(
        "--resume", action="store_true",
        help="reuse measurements saved in WORKDIR/state.json by an interrupted run (same settings)",
    )
    parser.add_argument("--child-run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-model", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = sorted(set(args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)))
    args.ratio_size = args.ratio_size or (max(args.sizes) if args.quick else 8192)
    args.model_batches = args.model_batches or (4 if args.quick else 30)
    return args


class Steps:
    """Measurements saved as soon as each finishes (``WORKDIR/state.json``), so that an
    interrupted run can be resumed with ``--resume`` under the same settings."""

    def __init__(self, args: argparse.Namespace) -> None:
        config = {"sizes": args.sizes, "ratio_size": args.ratio_size,
                  "model_batches": args.model_batches, "warmup": args.warmup,
                  "seed": args.seed, "scene_version": SCENE_VERSION}
        self.path = args.workdir / "state.json"
        self.state: dict[str, Any] = {"config": config, "started": None, "steps": {}}
        if args.resume and self.path.exists():
            saved = json.loads(self.path.read_text())
            if saved.get("config") == config:
                self.state = saved
                log(f"resuming: {sorted(saved['steps'])} already measured ({self.path})")
            else:
                log(f"not resuming: {self.path} holds a different configuration")
        if self.state["started"] is None:
            self.state["started"] = dt.datetime.now(dt.timezone.utc).isoformat()
        self.started = dt.datetime.fromisoformat(self.state["started"])

    def run(self, name: str, what: str, child: list[str]) -> dict[str, Any]:
        if name not in self.state["steps"]:
            log(what)
            self.state["steps"][name] = spawn(child)
            self.path.write_text(json.dumps(self.state, indent=1))
        result: dict[str, Any] = self.state["steps"][name]
        return result


def measure(args: argparse.Namespace, steps: Steps
            ) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """The engine runs per size, and the model-only samples around the ratio scene's run."""
    common = ["--workdir", str(args.workdir), "--seed", str(args.seed)]
    model_args = ["--child-model", str(args.model_batches), "--warmup", str(args.warmup)]
    runs: dict[int, dict[str, Any]] = {}
    samples: list[dict[str, Any]] = []
    for size in sorted({*args.sizes, args.ratio_size}):
        sample = f"model-only sample ({args.model_batches} batches) {{}} the {size}² run"
        if size == args.ratio_size:
            samples.append(steps.run("model-before", sample.format("before"), model_args))
        runs[size] = r = steps.run(f"run-{size}", f"tilerun.run on {size}² in a fresh process",
                                   ["--child-run", str(size), *common])
        log(f"  {size}²: {r['wall_s']:.1f} s wall, {r['tiles_run']} tiles, "
            f"peak RSS {r['maxrss_mib']:.0f} MiB")
        if size == args.ratio_size:
            samples.append(steps.run("model-after", sample.format("after"), model_args))
    return runs, samples


class ModelSample:
    """The model-only timings, extrapolated per tile."""

    def __init__(self, samples: list[dict[str, Any]]) -> None:
        self.samples = samples
        self.times = [t for s in samples for t in s["batch_times_s"]]
        self.per_batch = statistics.mean(self.times)
        self.per_tile = self.per_batch / BATCH
        self.cpu_per_tile = sum(s["cpu_s"] for s in samples) / (len(self.times) * BATCH)


def runs_table(runs: dict[int, dict[str, Any]], model: ModelSample, ratio_size: int
               ) -> list[str]:
    lines = [
        "| scene | tiles run | tiles min | run ÷ min | tilerun.run wall s | model-only s (extrap.) "
        "| wall ÷ model-only | CPU ÷ model CPU | in-run model s | model busy | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sorted(runs):
        r = runs[size]
        model_only = model.per_tile * r["tiles_run"]
        model_cpu = model.cpu_per_tile * r["tiles_run"]
        mark = " **(ratio scene)**" if size == ratio_size else ""
        lines.append(
            f"| {size}²{mark} | {r['tiles_run']} | {r['tiles_minimum']} "
            f"| {fmt(r['tiles_run'] / r['tiles_minimum'])} | {r['wall_s']:.1f} | {model_only:.1f} "
            f"| {fmt(r['wall_s'] / model_only)} | {fmt(r['cpu_s'] / model_cpu)} "
            f"| {r['model_in_run_s']:.1f} | {100 * r['model_in_run_s'] / r['wall_s']:.1f} % "
            f"| {r['maxrss_mib']:.0f} |"
        )
    return lines


def goals(runs: dict[int, dict[str, Any]], model: ModelSample, args: argparse.Namespace
          ) -> tuple[list[str], dict[str, float]]:
    """The goals table (and a warning when the machine was busy), and the ratios."""
    rr = runs[args.ratio_size]
    ratio = rr["wall_s"] / (model.per_tile * rr["tiles_run"])
    recompute = rr["tiles_run"] / rr["tiles_minimum"]
    small, large = runs[min(args.sizes)], runs[max(args.sizes)]
    rss_ratio = large["maxrss_mib"] / small["maxrss_mib"]
    # The wall ratio compares measurements taken minutes apart; other load skews it either way.
    shares = [rr["other_share"], *(smp["other_share"] for smp in model.samples)]
    busy = max((x for x in shares if x is not None), default=0.0)
    ratio_verdict = verdict(ratio <= RATIO_GOAL)
    if busy > BUSY_LIMIT:
        ratio_verdict = f"unreliable: other processes used up to {100 * busy:.0f} % of the CPU"
    lines = [
        "| metric | value | goal | |",
        "|---|---:|---:|---|",
        f"| tilerun.run wall ÷ model-only, {args.ratio_size}² | {fmt(ratio)} | ≤ {RATIO_GOAL} "
        f"| {ratio_verdict} |",
        f"| tiles_run ÷ tiles_minimum, {args.ratio_size}² | {fmt(recompute)} | 1.000 "
        f"| {verdict(recompute <= 1.0)} |",
        f"| peak RSS {max(args.sizes)}² ÷ {min(args.sizes)}² | {fmt(rss_ratio)} "
        f"({large['maxrss_mib']:.0f} / {small['maxrss_mib']:.0f} MiB) "
        f"| ≤ {RSS_GOAL} | {verdict(rss_ratio <= RSS_GOAL)} |",
        "",
    ]
    if busy > BUSY_LIMIT:
        lines += [
            f"**Warning:** other processes used {', '.join(share(x) for x in shares)} of "
            f"the machine's CPU during the {args.ratio_size}² run and the two model-only samples. "
            "Under such load the wall-time ratio is not meaningful (it can land far on either "
            "side of the truth: Linux shares CPU per thread, and OpenMP's two threads stall "
            "whenever one is preempted); rerun on an idle machine.",
            "",
        ]
    return lines, {"ratio": ratio, "recompute": recompute, "rss_ratio": rss_ratio}


def notes(runs: dict[int, dict[str, Any]], model: ModelSample, args: argparse.Namespace
          ) -> list[str]:
    """How the model-only time was sampled, and the runs' batches, memory and load."""
    t = model.times
    per_sample = ", ".join(f"{statistics.mean(s['batch_times_s']):.3f}" for s in model.samples)
    batches = ", ".join(
        f"{size}²: " + " ".join(f"{n}×{c}" for n, c in runs[size]["batches"].items())
        for size in sorted(runs))
    return [
        f"Model-only time is extrapolated per tile from a sample of {len(t)} timed batches of "
        f"{BATCH} random float32 tiles ({len(model.samples)} fresh processes × "
        f"{args.model_batches} batches, after {args.warmup} warm-up batches each, taken before "
        f"and after the {args.ratio_size}² run): {model.per_batch:.3f} s/batch = "
        f"{model.per_tile * 1000:.1f} ms/tile (min / median / max batch {min(t):.3f} / "
        f"{statistics.median(t):.3f} / {max(t):.3f} s; per-sample means {per_sample} s). "
        f"Model-only time for a scene = {model.per_tile * 1000:.1f} ms × tiles run.",
        "`in-run model s` is the time spent inside the model's forward during tilerun.run "
        "(forward hooks), `model busy` that time ÷ the run's wall time (how well reading, "
        "blending and writing hide behind the model); `CPU ÷ model CPU` compares the process CPU "
        "time (user+sys, all threads) of the run with the model-only CPU time for the same tiles "
        "(OpenMP spin-waiting inflates CPU time when other processes compete for the cores).",
        f"Forward calls by batch size (size×calls): {batches}.",
        "Peak RSS baseline (after imports and model build, before run): "
        + ", ".join(f"{s}²: {runs[s]['rss_before_run_mib']:.0f} MiB" for s in sorted(runs))
        + "; peak RSS of the model-only processes (baseline + the model's activations for a "
        "batch of 8): " + ", ".join(f"{smp['maxrss_mib']:.0f}" for smp in model.samples)
        + " MiB.",
        "Load average (1/5/15 min) at start / end of each run: " + "; ".join(
            f"{s}²: {runs[s]['loadavg_start']} / {runs[s]['loadavg_end']}" for s in sorted(runs))
        + ".",
        "Share of the machine's CPU used by *other* processes while measuring (0 % = idle "
        "machine; timings are only comparable when these are low): "
        + ", ".join(f"run {s}²: {share(runs[s]['other_share'])}" for s in sorted(runs))
        + ", model-only samples: " + ", ".join(share(s["other_share"]) for s in model.samples)
        + ".",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_run is not None:
        print(json.dumps(child_run(args.child_run, args.workdir, args.seed)))
        return 0
    if args.child_model is not None:
        print(json.dumps(child_model(args.child_model, args.warmup)))
        return 0
    log(f"sizes {args.sizes}, overhead ratio on {args.ratio_size}², model sample "
        f"{args.model_batches} batches ×2")
    for size in sorted({*args.sizes, args.ratio_size}):
        make_scene(args.workdir, size, args.seed)
    steps = Steps(args)
    runs, samples = measure(args, steps)
    model, info = ModelSample(samples), machine()
    goal_lines, ratios = goals(runs, model, args)
    print("\n".join([
        f"## tilerun engine benchmark — {steps.started.strftime('%Y-%m-%d %H:%M UTC')}", "",
        f"Machine: {info['cpus']} CPUs ({info['processor']}), torch {info['torch']} with "
        f"{info['torch_threads']} intra-op threads, Python {info['python']}, {info['platform']}.",
        f"Settings: tile {TILE}, overlap {OVERLAP}, batch {BATCH}, default chunk, device cpu; "
        f"model U-Net base 16 depth 4, {BANDS}→{CLASSES} classes, seed {MODEL_SEED}.", "",
        *runs_table(runs, model, args.ratio_size), "", *goal_lines, *notes(runs, model, args),
    ]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"date": steps.started.isoformat(), "machine": info,
                                         "runs": runs, "model_samples": samples, **ratios},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
