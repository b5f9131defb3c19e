#!/usr/bin/env python
"""tilerun's model backends against MONAI's ``sliding_window_inference``, on the same scene.

Usage::

    python benchmarks/bench_backends.py                     # 3072² and 8192² (long on CPU)
    python benchmarks/bench_backends.py --sizes 3072
    python benchmarks/bench_backends.py --rows monai auto   # only some rows
    python benchmarks/bench_backends.py --quick             # smoke run: one 512² scene

Every row runs in a fresh child process (its own peak RSS, nothing warm from a previous row),
one after another, on the same cached scene (a seeded 3-band uint8 GeoTIFF from
``_scene.make_scene``) with the same model: a U-Net (base 16, depth 4, 3 → 4 classes,
``torch.manual_seed(0)``) saved as a tilerun package with mean 127.5 / std 64 per band. Common
settings: tile 256, overlap 0.25, batch 8, gaussian blending (σ = 0.125 of the tile), CPU,
``--threads`` (default 2) torch intra-op threads in every row (tilerun's engine threads stay
at their default, the cores + 2).

Rows (``--rows`` picks groups: ``monai``, ``torch``, ``auto``, ``bf16``):

* **MONAI**: read the whole scene with rasterio and normalise it to a float32 ``(1, 3, H, W)``
  tensor (``read s``, not in the wall time), then time only
  ``sliding_window_inference(x, (256, 256), 8, model, overlap=0.25, mode="gaussian",
  sigma_scale=0.125, padding_mode="reflect")`` under ``torch.inference_mode``. The logits stay
  in memory (nothing is written); an interior crop is saved for the comparison.
* **tilerun torch**: ``tilerun.run(scene, package, out, PredictOptions(backend="torch"))``, fp32.
  Wall time = the whole call: open, check, probe, read, normalise, model, blend, write Zarr.
* **tilerun auto fp32** / **auto bf16**: the default backend (``backend="auto"``), fp32 and
  ``precision="bf16"``, each run twice with the same ``TILERUN_CACHE_DIR``: first with it empty
  (``conversion s`` = ``RunSummary.backend_seconds``, converting and checking the model, is
  included in the wall time), then again with the converted model cached.

Columns: ``÷ MONAI`` = the row's wall ÷ MONAI's inference wall (goals: auto fp32 ≤ 0.40,
auto bf16 ≤ 0.25, judged on the cached runs); ``peak RSS`` = ``ru_maxrss`` of the row's process
(or of a process it started, whichever is larger), interpreter and libraries included;
``max rel diff`` = ``max|a − b| ÷ max|b|`` over the whole scene with ``b`` the tilerun torch
logits (goal for auto fp32: ≤ 1e-4). On the MONAI row it compares tilerun torch (``a``) with
MONAI (``b``) on a central crop away from the scene border: informational only, since the two
place their tiles differently (tilerun's grid vs MONAI's windows flush with the far edge).

Internally the script re-invokes itself with ``--child JSON`` (one JSON line on stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LoadMeter, log, machine, peak_rss_mib, spawn_json, verdict
from _scene import make_scene

TILE, OVERLAP, BATCH, SIGMA = 256, 0.25, 8, 0.125
BANDS, CLASSES, MODEL_SEED = 3, 4, 0
MEAN, STD = 127.5, 64.0
FULL_SIZES, QUICK_SIZES = [3072, 8192], [512]
CROP_MAX = 2048  # edge of the saved MONAI crop (a 2048² crop of 4 float32 classes is 64 MiB)
STRIP = 1024  # rows of logits per read when comparing two stores
FP32_GOAL, RATIO_GOALS = 1e-4, {"auto-cached": 0.40, "bf16-cached": 0.25}


@dataclass(frozen=True)
class Row:
    """One measurement: which engine, backend and precision, and which cache it shares."""

    key: str
    group: str  # what --rows selects
    label: str
    backend: str  # "monai", or tilerun's PredictOptions.backend
    precision: str = "fp32"
    cache: str | None = None  # rows with the same name share one TILERUN_CACHE_DIR


ROWS = (
    Row("monai", "monai", "MONAI sliding_window_inference", "monai"),
    Row("torch", "torch", "tilerun backend=torch, fp32", "torch"),
    Row("auto-first", "auto", "tilerun auto, fp32, 1st run (empty cache)", "auto", cache="fp32"),
    Row("auto-cached", "auto", "tilerun auto, fp32, 2nd run (cached)", "auto", cache="fp32"),
    Row("bf16-first", "bf16", "tilerun auto, bf16, 1st run (empty cache)", "auto", "bf16", "bf16"),
    Row("bf16-cached", "bf16", "tilerun auto, bf16, 2nd run (cached)", "auto", "bf16", "bf16"),
)
GROUPS = ("monai", "torch", "auto", "bf16")


# -- Shared helpers --------------------------------------------------------------------------


def interior_box(size: int) -> tuple[int, int]:
    """``(start, edge)`` of the central square crop used to compare with MONAI.

    It keeps at least a tile (a quarter of the scene for small scenes) from every border.
    """
    margin = min(TILE, size // 4)
    edge = min(size - 2 * margin, CROP_MAX)
    return (size - edge) // 2, edge


def write_package(path: Path) -> Path:
    """The benchmark model (seeded U-Net, mean/std per band) as a tilerun package."""
    from _models import bench_unet

    from tilerun.models import save_package

    model = bench_unet(bands=BANDS, classes=CLASSES, seed=MODEL_SEED)
    save_package(model, path, mean=(MEAN,) * BANDS, std=(STD,) * BANDS)
    return path


# -- Child processes (one per row) -----------------------------------------------------------


def child_monai(job: dict[str, Any]) -> dict[str, Any]:
    """MONAI row: read + normalise (timed apart), then sliding_window_inference alone."""
    import rasterio
    import torch
    from monai.inferers import sliding_window_inference

    from tilerun.models import load_package

    torch.set_num_threads(job["threads"])
    model, spec = load_package(job["package"])
    t0 = time.perf_counter()
    with rasterio.open(job["scene"]) as ds:
        x = torch.from_numpy(ds.read()).to(torch.float32)
    mean = torch.tensor(spec.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(spec.std, dtype=torch.float32)[:, None, None]
    x = x.sub_(mean).div_(std)[None]  # in place: one float32 copy of the scene
    read_s = time.perf_counter() - t0
    meter = LoadMeter()
    with torch.inference_mode():
        t0 = time.perf_counter()
        logits = sliding_window_inference(
            x, roi_size=(TILE, TILE), sw_batch_size=BATCH, predictor=model, overlap=OVERLAP,
            mode="gaussian", sigma_scale=SIGMA, padding_mode="reflect",
        )
        wall = time.perf_counter() - t0
    start, edge = interior_box(x.shape[-1])
    crop = logits[0, :, start : start + edge, start : start + edge]
    np.save(job["crop"], np.ascontiguousarray(crop.numpy()))
    return {"wall_s": wall, "read_s": read_s, "backend": "torch (eager)",
            "maxrss_mib": peak_rss_mib(), "other_share": meter.stop()["other_share"]}


def backend_option(backend: str) -> dict[str, str]:
    """``{"backend": ...}`` for PredictOptions; nothing for the default (``auto``).

    Before tilerun had the option, its only backend was torch, so ``torch`` is then omitted too.
    """
    from tilerun.engine import PredictOptions

    if backend == "auto":
        return {}
    if "backend" not in PredictOptions.__dataclass_fields__ and backend == "torch":
        log("  PredictOptions has no 'backend' yet: running its only backend (torch)")
        return {}
    return {"backend": backend}


def child_tilerun(job: dict[str, Any]) -> dict[str, Any]:
    """A tilerun row: wall time of one whole ``tilerun.run`` call into a fresh store."""
    import torch

    import tilerun

    torch.set_num_threads(job["threads"])
    options = tilerun.PredictOptions(
        tile=TILE, overlap=OVERLAP, batch_size=BATCH, blend="gaussian", sigma=SIGMA,
        device="cpu", precision=job["precision"], tissue="none",  # engine threads: default
        overwrite=True, **backend_option(job["backend"]),
    )
    meter = LoadMeter()
    t0 = time.perf_counter()
    summary = tilerun.run(job["scene"], job["package"], job["out"], options)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "engine_s": summary.seconds, "tiles": summary.tiles_run,
            "backend": getattr(summary, "backend", "torch"),
            "backend_s": getattr(summary, "backend_seconds", None),
            "maxrss_mib": peak_rss_mib(), "other_share": meter.stop()["other_share"]}


def spawn(job: dict[str, Any], cache_dir: Path) -> dict[str, Any]:
    """Run one row in a fresh interpreter; its last stdout line is the JSON result."""
    env = {**os.environ, "TILERUN_CACHE_DIR": str(cache_dir)}
    result = spawn_json(__file__, ["--child", json.dumps(job)], env)
    return result if result is not None else {"error": "the child failed (see its log)"}


# -- Comparisons -----------------------------------------------------------------------------


def rel_diff_stores(a: Path, b: Path) -> float:
    """``max|a − b| ÷ max|b|`` of two stores' logits, read a strip of rows at a time."""
    import zarr

    la, lb = zarr.open_group(a, mode="r")["logits"], zarr.open_group(b, mode="r")["logits"]
    diff = peak = 0.0
    for y in range(0, lb.shape[1], STRIP):
        xa, xb = np.asarray(la[:, y : y + STRIP]), np.asarray(lb[:, y : y + STRIP])
        diff = max(diff, float(np.max(np.abs(xa - xb))))
        peak = max(peak, float(np.max(np.abs(xb))))
    return diff / peak


def rel_diff_crop(store: Path, crop: Path) -> float:
    """``max|store − crop| ÷ max|crop|`` on the interior crop MONAI saved."""
    import zarr

    ref = np.load(crop)
    start, edge = interior_box(zarr.open_group(store, mode="r")["logits"].shape[-1])
    ours = np.asarray(
        zarr.open_group(store, mode="r")["logits"][:, start : start + edge, start : start + edge]
    )
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


# -- Parent: one size ------------------------------------------------------------------------


def run_size(size: int, rows: list[Row], args: argparse.Namespace,
             package: Path) -> dict[str, dict[str, Any]]:
    """Every selected row on the ``size`` scene; adds the ``rel_diff`` of each."""
    scene = make_scene(args.workdir, size, args.seed)
    base = args.workdir / f"backends-{size}"
    caches: dict[str, Path] = {}  # one TILERUN_CACHE_DIR per Row.cache name, fresh per size
    fresh: list[Path] = []
    results: dict[str, dict[str, Any]] = {}
    ref = base.with_name(f"{base.name}-torch.zarr")
    crop = base.with_name(f"{base.name}-monai-crop.npy")
    try:
        for row in rows:
            cache = caches.get(row.cache) if row.cache else None
            if cache is None:
                cache = Path(tempfile.mkdtemp(prefix="tilerun-cache-"))
                fresh.append(cache)
                if row.cache:
                    caches[row.cache] = cache
            out = ref if row.key == "torch" else base.with_name(f"{base.name}-{row.key}.zarr")
            job = {"kind": "monai" if row.backend == "monai" else "tilerun", "scene": str(scene),
                   "package": str(package), "out": str(out), "crop": str(crop),
                   "backend": row.backend, "precision": row.precision, "threads": args.threads}
            log(f"{size}²: {row.label}")
            results[row.key] = r = spawn(job, cache)
            log(f"  {r['error']}" if "error" in r else f"  {r['wall_s']:.1f} s, {r['backend']}")
            if row.backend != "monai" and "error" not in r and row.key != "torch":
                r["rel_diff"] = rel_diff_stores(out, ref) if ref.exists() else None
                shutil.rmtree(out, ignore_errors=True)
        if "monai" in results and ref.exists() and crop.exists():
            results["monai"]["rel_diff"] = rel_diff_crop(ref, crop)
    finally:
        for path in (ref, crop, *fresh):
            with contextlib.suppress(OSError):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    return results


# -- Report ----------------------------------------------------------------------------------


def _num(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def table(size: int, rows: list[Row], results: dict[str, dict[str, Any]]) -> list[str]:
    """The markdown table of one size, then its goals and load notes."""
    monai = results.get("monai", {}).get("wall_s")
    edge = interior_box(size)[1]
    lines = [
        f"### {size}² scene",
        "",
        "| row | backend used | wall s | ÷ MONAI | conversion s | peak RSS MiB | max rel diff |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        r = results[row.key]
        if "error" in r:
            lines.append(f"| {row.label} | failed ({r['error']}) | | | | | |")
            continue
        label = row.label + (f" (read + normalise {r['read_s']:.2f} s)" if "read_s" in r else "")
        diff = _num(r.get("rel_diff"), ".1e")
        if row.key == "torch":
            diff = "reference"
        elif row.key == "monai" and r.get("rel_diff") is not None:
            diff += f" (torch vs MONAI, interior {edge}², info)"
        ratio = _num(r["wall_s"] / monai if monai else None, ".2f")
        lines.append(
            f"| {label} | {r['backend']} | {r['wall_s']:.2f} | {ratio} "
            f"| {_num(r.get('backend_s'), '.2f')} | {r['maxrss_mib']:.0f} | {diff} |"
        )
    return [*lines, "", *goals(results), "", load_note(rows, results)]


def goals(results: dict[str, dict[str, Any]]) -> list[str]:
    """Pass/miss lines for the goals whose rows were measured."""
    lines = []
    monai = results.get("monai", {}).get("wall_s")
    for key, goal in RATIO_GOALS.items():
        wall = results.get(key, {}).get("wall_s")
        if monai and wall:
            lines.append(f"* {key} wall ÷ MONAI: {wall / monai:.2f} (goal ≤ {goal:.2f}): "
                         f"{verdict(wall / monai <= goal)}")
    diffs = [results.get(k, {}).get("rel_diff") for k in ("auto-first", "auto-cached")]
    diffs = [d for d in diffs if d is not None]
    if diffs:
        lines.append(f"* auto fp32 vs torch max rel diff: {max(diffs):.1e} "
                     f"(goal ≤ {FP32_GOAL:.0e}): {verdict(max(diffs) <= FP32_GOAL)}")
    return lines


def load_note(rows: list[Row], results: dict[str, dict[str, Any]]) -> str:
    """Share of the CPU other processes used during each row (timings need ~0 %)."""
    shares = []
    for row in rows:
        share = results[row.key].get("other_share")
        shares.append(f"{row.key} {_num(None if share is None else 100 * share, '.0f')} %")
    return "CPU used by other processes while timing (0 % = idle machine): " + ", ".join(shares)


def header(threads: int) -> list[str]:
    """Date, machine and library versions."""
    import monai
    import onnxruntime
    import openvino

    info = machine()
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"## bench_backends.py — {now}",
        "",
        f"Machine: {info['processor']}, {info['cpus']} cores, {info['platform']}. "
        f"Python {info['python']}, torch {info['torch']}, MONAI {monai.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, OpenVINO {openvino.__version__}.",
        f"Settings: tile {TILE}, overlap {OVERLAP}, batch {BATCH}, gaussian σ {SIGMA}, "
        f"{threads} threads; U-Net base 16 depth 4, {BANDS}→{CLASSES} classes, seed {MODEL_SEED}, "
        f"mean {MEAN} / std {STD}.",
        "",
    ]


# -- Main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help=f"scene edges (default {FULL_SIZES})")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: sizes {QUICK_SIZES}")
    parser.add_argument("--rows", nargs="+", choices=GROUPS, default=list(GROUPS),
                        help="row groups to run (default: all)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch intra-op threads in every row")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tilerun-bench"))
    parser.add_argument("--seed", type=int, default=0, help="scene seed")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(child_monai(job) if job["kind"] == "monai" else child_tilerun(job)))
        return 0

    sizes = sorted(set(args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)))
    rows = [row for row in ROWS if row.group in args.rows]
    args.workdir.mkdir(parents=True, exist_ok=True)
    package = write_package(args.workdir / "bench-backends-unet16.safetensors")
    print("\n".join(header(args.threads)), flush=True)
    raw = {}
    for size in sizes:
        raw[size] = results = run_size(size, rows, args, package)
        print("\n".join([*table(size, rows, results), ""]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
