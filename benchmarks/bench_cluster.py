#!/usr/bin/env python
"""1 vs 2 local Dask workers (one torch thread each) on one scene: speed-up and scheduling cost.

    python benchmarks/bench_cluster.py [--size 2048] [--chunk 512]

Scheduling overhead per chunk, as a fraction of compute: from the task stream, compute is the
summed duration of every task on the workers; overhead = (workers × wall − compute) / compute,
i.e. worker time not spent inside a task (scheduling, transfers, idle waits) per unit of work.
Two walls: the chunk graph's execution (``summary.seconds``: from submitting the graph to the
last write) and the whole ``tilerun.run`` call, which adds the client's own work before and
after (opening the input, loading and probing the model, creating and publishing the store),
when every worker waits whatever the scheduling.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import torch
from _models import bench_unet
from distributed import Client, LocalCluster

import tilerun
from tilerun.sample import write_scene


def measure(workers: int, scene: Path, out: Path,
            chunk: int) -> tuple[float, float, float, int]:
    model = bench_unet()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.get_task_stream()  # start recording
        start = time.perf_counter()
        summary = tilerun.run(scene, model, out, tilerun.PredictOptions(
            tile=256, overlap=0.25, batch_size=8, chunk=chunk, overwrite=True,
            mean=(120,) * 3, std=(60,) * 3), client=client)
        wall = time.perf_counter() - start
        stream = client.get_task_stream()
    compute = sum(
        part["stop"] - part["start"]
        for task in stream for part in task["startstops"] if part["action"] == "compute"
    )
    graph = (workers * summary.seconds - compute) / compute
    return wall, graph, (workers * wall - compute) / compute, summary.chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--chunk", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scene = Path(tmp) / "scene.tif"
        write_scene(scene, args.size, args.size, seed=0)
        rows = [(n, *measure(n, scene, Path(tmp) / f"o{n}.zarr", args.chunk)) for n in (1, 2)]
    base = rows[0][1]
    print(f"\n{dt.date.today()} · {os.cpu_count()} cores · torch {torch.__version__} · "
          f"{args.size}² scene, chunk {args.chunk}, U-Net base 16, tile 256, batch 8\n")
    print("| workers | chunks | speed-up vs 1 worker | overhead ÷ compute, graph | "
          "overhead ÷ compute, whole call |")
    print("|---:|---:|---:|---:|---:|")
    for workers, wall, graph, whole, chunks in rows:
        print(f"| {workers} | {chunks} | {base / wall:.2f} | {graph:.1%} | {whole:.1%} |")


if __name__ == "__main__":
    main()
