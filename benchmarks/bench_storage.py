#!/usr/bin/env python
"""What writing the output into object storage costs, against a local folder, in one run.

Usage::

    python benchmarks/bench_storage.py                  # 4096² scene, about a minute here
    python benchmarks/bench_storage.py --size 8192 --model unet

Rows (one process, one after another, on the same cached scene and model):

* **local folder**: ``tilerun.run`` into ``OUT.zarr`` (staged, renamed when complete);
* **S3 (moto on 127.0.0.1)**: the same run into ``s3://bench/OUT.zarr`` through obstore
  (written in place, a lease object renewed every 5 s, ``complete`` flag written last), against
  moto's S3 server in its own process on this machine: no network latency, but every chunk
  is an HTTP PUT with a signed request, and moto's own CPU shares the same cores;
* **S3, 2 workers**: the same into the bucket from a 2-process local Dask cluster (its wall
  includes starting the cluster, several seconds here).

Each row gives wall and CPU seconds of this process (the workers' and moto's CPU are not in
it, so compare walls) and wall ÷ the local row. The model is the null model (a 1×1
convolution; ``--model unet``: a base-8 U-Net), which leaves the storage path as much of the
run as it can be. Real object stores add round-trip latency per request, which the engine's
threads overlap (each chunk is written by the thread that blended it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from _common import Meter
from _models import NullModel, bench_unet
from _scene import make_scene

TILE, OVERLAP, BATCH, CHUNK = 256, 0.25, 8, 1024


@contextlib.contextmanager
def moto() -> Iterator[str]:
    """A moto S3 server on a free port, with a bucket ``bench``; sets the environment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true",
                           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
        import boto3

        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket="bench")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def one_run(scene: Path, model: torch.nn.Module, out: str, workers: int | None) -> dict[str, Any]:
    import tilerun

    options = tilerun.PredictOptions(tile=TILE, overlap=OVERLAP, batch_size=BATCH, chunk=CHUNK,
                                     device="cpu", overwrite=True, tissue="none",
                                     backend="torch", workers=workers)
    with Meter() as m:
        summary = tilerun.run(scene, model, out, options)
    return {"wall": m.wall, "cpu": m.cpu, "chunks": summary.chunks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--model", choices=("null", "unet"), default="null")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tilerun-bench"))
    args = parser.parse_args(argv)

    scene = make_scene(args.workdir, args.size, 0)
    torch.manual_seed(0)
    model = NullModel().eval() if args.model == "null" else bench_unet(base=8, depth=3)
    local = args.workdir / "storage-out.zarr"
    rows: dict[str, dict[str, Any]] = {}
    with moto():
        one_run(scene, model, str(local), None)  # warm-up: caches, imports, allocator
        rows["local folder"] = one_run(scene, model, str(local), None)
        rows["S3 (moto on 127.0.0.1)"] = one_run(scene, model, "s3://bench/out.zarr", None)
        rows["S3, 2 workers (incl. starting the cluster)"] = one_run(
            scene, model, "s3://bench/out2.zarr", 2)
    shutil.rmtree(local, ignore_errors=True)
    base = rows["local folder"]["wall"]
    print(f"## {dt.date.today()} · bench_storage.py --size {args.size} --model {args.model}\n")
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}; scene {args.size}², tile {TILE}, chunk {CHUNK}.\n")
    print("| output | wall s | CPU s (this process) | wall ÷ local |")
    print("|---|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['wall']:.2f} | {row['cpu']:.2f} | {row['wall'] / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
