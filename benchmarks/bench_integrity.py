#!/usr/bin/env python
"""What the integrity checks cost, against the run and its I/O floor (issue 17 §1).

Usage::

    python benchmarks/bench_integrity.py                   # 8192² scene, a few minutes here
    python benchmarks/bench_integrity.py --size 4096 --model unet

One process, one step after another, on the same cached scene (``bench_engine.make_scene``:
deflate-tiled uint8, 3 bands) and 1024² chunks of 4-class float32 logits:

* **run**: ``tilerun.run`` into a local folder, every check included (the null model, a 1×1
  convolution, leaves I/O and the engine as much of the run as they can be; ``--model unet``:
  a base-8 U-Net);
* **I/O floor**: reading every chunk's input window (decoding the GeoTIFF) plus writing every
  chunk's logits through Zarr (Blosc LZ4) — what no run can avoid;
* the checks, each measured alone over the whole image: the input's content digest (CRC-32C
  of its file, in a background thread during a run), the chunk checksums (CRC-32C of each
  chunk's data as stored), Zarr's ``crc32c`` codec (its CRC of each compressed chunk and the
  copy that appends it), the
  lock check before each chunk write, the publish check (every chunk's row), and the resume
  verification (reading back and checking every kept chunk: its worst case, all kept).

Each is printed in seconds, ns per pixel and as a share of the run's wall; 1 Gpx figures are
the per-pixel costs times 10⁹ (every check is linear in pixels), not a 1 Gpx run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
import torch
import zarr
from bench_engine import make_scene
from bench_pipeline import NullModel

TILE, OVERLAP, BATCH, CHUNK, CLASSES = 256, 0.25, 8, 1024, 4


def timed(step: Callable[[], Any], repeat: int = 1) -> float:
    """The fastest of ``repeat`` walls (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def run_once(scene: Path, model: torch.nn.Module, out: Path) -> float:
    import tilerun

    options = tilerun.PredictOptions(tile=TILE, overlap=OVERLAP, batch_size=BATCH, chunk=CHUNK,
                                     device="cpu", overwrite=True, tissue="none",
                                     backend="torch", pyramid="none")
    return timed(lambda: tilerun.run(scene, model, out, options))


def io_floor(scene: Path, size: int, work: Path) -> tuple[float, float]:
    """Seconds to read every chunk's input window, and to write every chunk's logits."""
    from tilerun.geometry import Window
    from tilerun.sinks.layout.variables import output_codec
    from tilerun.sources import open_source

    source = open_source(scene)
    windows = [Window(y, x, min(CHUNK, size - y), min(CHUNK, size - x))
               for y in range(0, size, CHUNK) for x in range(0, size, CHUNK)]
    read = timed(lambda: [source.read(w) for w in windows])
    logits = np.random.default_rng(0).normal(size=(CLASSES, CHUNK, CHUNK)).astype(np.float32)
    return read, write_all(work / "floor.zarr", size, logits, (output_codec(3),))


def write_all(path: Path, size: int, logits: np.ndarray, codecs: tuple[Any, ...]) -> float:
    shutil.rmtree(path, ignore_errors=True)
    array = zarr.create_array(path, shape=(CLASSES, size, size), chunks=(CLASSES, CHUNK, CHUNK),
                              dtype="float32", fill_value=np.nan, compressors=codecs)

    def write() -> None:
        for y in range(0, size, CHUNK):
            for x in range(0, size, CHUNK):
                array[:, y:y + CHUNK, x:x + CHUNK] = logits
    return timed(write)


def checks(scene: Path, size: int, store: Path, work: Path) -> dict[str, float]:
    """Seconds each check takes over the whole image."""
    from tilerun.sinks import integrity
    from tilerun.sinks.layout.job_record import input_digest
    from tilerun.sinks.layout.store import read_chunks_done
    from tilerun.sinks.layout.variables import output_codec
    from tilerun.sinks.lease import RunLock
    from tilerun.sources import open_source

    chunks = (-(-size // CHUNK)) ** 2
    source = open_source(scene)
    # a chunk of the run's own logits (smooth: they compress as real ones do)
    logits = np.asarray(zarr.open_array(store / "logits", mode="r")[:, :CHUNK, :CHUNK])
    # The codec's work on each chunk, alone: a CRC-32C of the compressed bytes and the copy
    # that appends it (timing whole writes with and without it only measures the shared
    # machine's noise).
    compressed = np.frombuffer(output_codec(2).encode(np.ascontiguousarray(logits)), np.uint8)

    def codec() -> None:
        for _ in range(chunks):
            np.append(compressed, np.zeros(4, np.uint8))
            google_crc32c.value(compressed)  # type: ignore[arg-type]
    lock = RunLock(work)
    lock.acquire(work)
    try:
        lock_checks = timed(lambda: [lock.holds(lock.token) for _ in range(chunks)])
    finally:
        lock.release()
    done = read_chunks_done(store)
    indices = [(int(i), int(j)) for i, j in np.argwhere(done)]
    sums = integrity.read_sums(store)
    rows = sums[0] if sums is not None else None
    return {
        "input digest (CRC-32C of the file)": timed(lambda: input_digest(source), 2),
        "chunk checksums (CRC-32C of the data)": timed(
            lambda: [integrity.checksum(logits) for _ in range(chunks)], 2),
        "Zarr crc32c codec (CRC + append, per chunk)": timed(codec, 2),
        "lock check before each chunk write": lock_checks,
        "publish check (every chunk's row)": timed(lambda: integrity.unpublishable(
            read_chunks_done(store) > 0, integrity.read_sums(store)[0],  # type: ignore[index]
            int(rows[0, 0, 0]) if rows is not None else 0, {})),
        "resume verification (all chunks kept)": timed(
            lambda: integrity.verify(store, indices, CHUNK, sums)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--model", choices=("null", "unet", "both"), default="both")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tilerun-bench"))
    args = parser.parse_args(argv)
    from tilerun.models import build_unet

    scene = make_scene(args.workdir, args.size, 0)
    torch.manual_seed(0)
    models = {"null": NullModel().eval(),
              "unet": build_unet("unet", in_channels=3, classes=CLASSES, base=8, depth=3).eval()}
    names = ("null", "unet") if args.model == "both" else (args.model,)
    walls = {}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        for name in names:
            run_once(make_scene(args.workdir, 2048, 0), models[name], work / "warm.zarr")
            walls[name] = run_once(scene, models[name], work / "out.zarr")
        read, write = io_floor(scene, args.size, work)
        costs = checks(scene, args.size, work / "out.zarr", work)
    report(args, scene, walls, read + write, costs)
    return 0


def report(args: argparse.Namespace, scene: Path, walls: dict[str, float], floor: float,
           costs: dict[str, float]) -> None:
    """The table, in Markdown: seconds, ns/px, share of each run, and at 1 Gpx."""
    pixels = args.size ** 2
    print(f"## {dt.date.today()} · bench_integrity.py --size {args.size} --model {args.model}\n")
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
          f"(shared), torch {torch.__version__}; scene {args.size}² "
          f"({scene.stat().st_size / 2**20:.0f}"
          f" MiB deflate), chunk {CHUNK}, {CLASSES}-class float32 logits.\n")
    shares = " | ".join(f"share of the {n} run" for n in walls)
    print(f"| step | s | ns/px | {shares} | at 1 Gpx, s |")
    print("|---|---:|---:|" + "---:|" * len(walls) + "---:|")

    def line(name: str, seconds: float) -> None:
        parts = " | ".join(f"{seconds / wall:.2%}" for wall in walls.values())
        print(f"| {name} | {seconds:.3f} | {seconds / pixels * 1e9:.2f} | {parts} | "
              f"{seconds / pixels * 1e9:.1f} |")

    for name, wall in walls.items():
        line(f"run, {name} model (checks included)", wall)
    line("I/O floor: read input + write logits", floor)
    for name, seconds in costs.items():
        line(name, seconds)
    fresh = sum(v for k, v in costs.items() if not k.startswith("resume"))
    line("**all checks of a fresh run**", fresh)
    line("**… plus resume verification, all kept**", fresh + costs[
        "resume verification (all chunks kept)"])


if __name__ == "__main__":
    sys.exit(main())
