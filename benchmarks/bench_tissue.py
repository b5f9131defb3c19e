#!/usr/bin/env python
"""Tissue skipping: on slides whose tissue is a known fraction, wall time should track it.

    python benchmarks/bench_tissue.py [--size 4096] [--fractions 0.1 0.3 0.6 1.0]

For each fraction ``f`` a synthetic H&E-like pyramid (:func:`tilerun.sample.write_slide`, tissue
exactly ``f`` of the area) is predicted with a base-16 U-Net (tile 256, overlap 0.25, batch 8,
CPU) with ``tissue=auto``, and once with ``tissue=none`` as the reference. The table gives the
share of tiles skipped, wall time ÷ the full run's, and the ideal ratio ``1 - skipped``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from _models import bench_unet

import tilerun
from tilerun.sample import write_slide


def run(path: Path, model: torch.nn.Module, out: Path, tissue: str) -> tuple[float, float]:
    start = time.perf_counter()
    summary = tilerun.run(path, model, out, tilerun.PredictOptions(
        tissue=tissue, level=0, tile=256, overlap=0.25, batch_size=8, overwrite=True,
        pyramid="none"))
    return time.perf_counter() - start, summary.skipped_fraction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3, 0.6, 1.0])
    args = parser.parse_args()
    model = bench_unet()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for fraction in args.fractions:
            slide = work / f"slide-{fraction}.tif"
            write_slide(slide, args.size, tissue_fraction=fraction, seed=7)
            full, _ = run(slide, model, work / "full.zarr", "none")
            part, skipped = run(slide, model, work / "part.zarr", "auto")
            rows.append((fraction, skipped, part / full, 1 - skipped))
            print(f"fraction {fraction}: skipped {skipped:.3f}, time ratio {part / full:.3f}",
                  flush=True)
    print(f"\n{dt.date.today()} · {platform.processor() or platform.machine()} · "
          f"{os.cpu_count()} cores · torch {torch.__version__} · {args.size}² slide\n")
    print("| tissue fraction | tiles skipped | time ÷ full run | ideal (1 − skipped) |")
    print("|---|---|---|---|")
    for fraction, skipped, ratio, ideal in rows:
        print(f"| {fraction:.2f} | {skipped:.3f} | {ratio:.3f} | {ideal:.3f} |")


if __name__ == "__main__":
    main()
