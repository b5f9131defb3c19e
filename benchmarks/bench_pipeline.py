#!/usr/bin/env python
"""What the engine itself costs, against the I/O floor and the model alone, in one run.

Usage::

    python benchmarks/bench_pipeline.py                 # 8192² scene (about 4 minutes here)
    python benchmarks/bench_pipeline.py --size 4096     # quicker
    python benchmarks/bench_pipeline.py --rates 5 10 20 --json out.json

Rows (each measured in this process, one after another, on the same cached scene):

* **read alone**: rasterio reads of every 1024² window, one thread: the decode cost.
* **I/O floor**: read + float32 conversion + a Zarr write of a 4-class float32 array with
  tilerun's output codec, no model, over a pool of ``--threads`` threads (the engine's own
  parallelism). The wall time of this row is what ``tilerun.run`` is compared with.
* **model only**: the null model on as many tiles as the run computes, batch by batch.
* **tilerun.run (null model)**: the whole engine. *Engine CPU* = the run's CPU − model-only CPU,
  per output pixel.
* **tilerun.run, no run report**: the same run with the report's statistics switched off
  (``tilerun.report.collect.ENABLED``): what the input/output statistics and call timing
  cost. After one warm-up run (the first run pays ~30 % more CPU in page faults), runs with
  and without the report alternate twice; each row is the lower CPU of its two.

The null model is a 1×1 convolution, 3 → 4 classes, applied in channels-last memory order:
eager PyTorch runs a 1×1 convolution on NCHW input with 2 intra-op threads at ~74 ms of CPU per
batch of 8 × 256² here (1.6 ms in channels-last), an artefact that would drown the engine's
own cost.

**Codecs**: CPU MB/s and compression ratio of each candidate codec writing the run's own
output chunks through Zarr (why the default is what it is).

**Simulated device** ("does the device ever wait?"): a model that holds no CPU and no GIL; it
sleeps ``n · T² / R`` seconds per batch of ``n`` tiles of ``T²`` pixels, i.e. a device with a
throughput of ``R`` Mpx/s of tiles, and returns a view of its input as logits. End-to-end tile
throughput ÷ ``R`` near 1 means the host keeps such a device busy; the goal is ≥ 0.90.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import Meter
from _models import NullModel, SleepModel
from _scene import make_scene

TILE, OVERLAP, BATCH, CHUNK = 256, 0.25, 8, 1024


def windows(size: int, edge: int = CHUNK) -> list[tuple[int, int, int, int]]:
    return [(y, x, min(edge, size - y), min(edge, size - x))
            for y in range(0, size, edge) for x in range(0, size, edge)]


def read_alone(scene: Path, size: int) -> dict[str, float]:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(scene) as ds, Meter() as m:
        for y, x, h, w in windows(size):
            ds.read(window=Window(x, y, w, h))
    return {"wall": m.wall, "cpu": m.cpu}


def io_floor(scene: Path, size: int, out: Path, threads: int) -> dict[str, float]:
    """Read, convert to float32, write 4 float32 channels with tilerun's codec."""
    import rasterio
    import zarr
    from rasterio.windows import Window

    from tilerun.sinks.layout.variables import output_codec

    shutil.rmtree(out, ignore_errors=True)
    array = zarr.create_array(out, shape=(4, size, size), chunks=(4, CHUNK, CHUNK),
                              dtype="float32", fill_value=np.nan, compressors=output_codec())
    local = threading.local()

    def one(win: tuple[int, int, int, int]) -> None:
        y, x, h, w = win
        if not hasattr(local, "ds"):
            local.ds = rasterio.open(scene)
        pixels = local.ds.read(window=Window(x, y, w, h)).astype(np.float32)
        array[:, y: y + h, x: x + w] = np.concatenate([pixels, pixels[:1]])

    with Meter() as m, ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, windows(size)))
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": m.wall, "cpu": m.cpu}


def model_only(model: torch.nn.Module, tiles: int) -> dict[str, float]:
    batch = torch.rand(BATCH, 3, TILE, TILE)
    with torch.inference_mode():
        for _ in range(3):
            model(batch)
        with Meter() as m:
            for _ in range(-(-tiles // BATCH)):
                model(batch)
    return {"wall": m.wall, "cpu": m.cpu}


def engine_run(scene: Path, model: torch.nn.Module, out: Path,
               threads: int | None, report: bool = True) -> tuple[dict[str, Any], Any]:
    import tilerun
    from tilerun.engine import PredictOptions
    from tilerun.report import collect

    collect.ENABLED = report

    # backend "torch": the rows compare the engine with this very model run eagerly, and the
    # simulated device's sleep exists only in eager PyTorch (an ONNX export drops it).
    options = PredictOptions(tile=TILE, overlap=OVERLAP, batch_size=BATCH, chunk=CHUNK,
                             device="cpu", overwrite=True, tissue="none", threads=threads,
                             backend="torch")
    with Meter() as m:
        summary = tilerun.run(scene, model, out, options)
    collect.ENABLED = True
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": m.wall, "cpu": m.cpu, "tiles": summary.tiles_run}, summary


def codec_table(scene: Path, size: int, workdir: Path) -> list[dict[str, Any]]:
    """Each candidate codec writing the same 4 output chunks of null-model logits."""
    import zarr
    from zarr.codecs import BloscCodec, ZstdCodec

    import tilerun
    from tilerun.engine import PredictOptions

    crop = min(size, 2048)
    src = workdir / "codec-src.zarr"
    torch.manual_seed(0)
    tilerun.run(_crop_source(scene, crop), NullModel().eval(), src,
                PredictOptions(tile=TILE, overlap=OVERLAP, device="cpu", overwrite=True,
                               tissue="none"))
    logits = np.asarray(zarr.open_group(src)["logits"][:])
    shutil.rmtree(src)
    candidates = {
        "zstd level 0 (Zarr's default)": ZstdCodec(level=0),
        "blosc lz4 + shuffle (tilerun)": BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
        "blosc lz4 + bitshuffle": BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),
        "blosc zstd 1 + shuffle": BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"),
        "none": None,
    }
    rows = []
    for name, codec in candidates.items():
        path = workdir / "codec.zarr"
        shutil.rmtree(path, ignore_errors=True)
        array = zarr.create_array(path, shape=logits.shape, chunks=(4, CHUNK, CHUNK),
                                  dtype="float32", fill_value=np.nan, compressors=codec)
        with Meter() as m:
            array[:] = logits
        stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        rows.append({"codec": name, "mb_per_cpu_s": logits.nbytes / 1e6 / m.cpu,
                     "ratio": logits.nbytes / stored})
        shutil.rmtree(path)
    return rows


def _crop_source(scene: Path, size: int) -> Any:
    """The scene's top-left ``size²`` read into memory (a plain array: no georeferencing)."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(scene) as ds:
        return ds.read(window=Window(0, 0, size, size))


def simulated(scene: Path, out: Path, rates: list[float], threads: int | None,
              tiles_px: int) -> list[dict[str, Any]]:
    """The simulated device runs in NCHW: the torch backend's channels-last conversion of each
    batch is a kernel on a real GPU (part of its time R), but here it would be a 2 ms host
    copy per batch on the compute thread, on top of the sleep (R = 20: 0.78 instead of 0.90)."""
    from tilerun.backends import torch_backends

    rows = []
    layout, torch_backends.CHANNELS_LAST = torch_backends.CHANNELS_LAST, torch.contiguous_format
    try:
        for rate in rates:
            rows.append(_simulated_row(scene, out, rate, threads, tiles_px))
    finally:
        torch_backends.CHANNELS_LAST = layout
    return rows


def _simulated_row(scene: Path, out: Path, rate: float, threads: int | None,
                   tiles_px: int) -> dict[str, Any]:
    result, summary = engine_run(scene, SleepModel(rate), out, threads)
    achieved = summary.tiles_run * tiles_px / result["wall"] / 1e6
    return {"rate": rate, "wall": result["wall"], "achieved": achieved,
            "ratio": achieved / rate, "cpu": result["cpu"]}


def report(size: int, rows: dict[str, Any], codecs: list[dict[str, Any]],
           sim: list[dict[str, Any]], threads: int) -> str:
    px = size * size
    run, model = rows["run"], rows["model"]
    engine_cpu = run["cpu"] - model["cpu"]
    lines = [
        f"## {dt.date.today()} · bench_pipeline.py --size {size}",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads; engine threads: {threads}.",
        f"Scene {size}², 3-band uint8 deflate GeoTIFF, tile {TILE}, overlap {OVERLAP}, "
        f"batch {BATCH}, chunk {CHUNK}, {run['tiles']} tiles.",
        "",
        "| row | wall s | CPU s | CPU µs / output px | Mpx/s (wall) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, key in (("read alone (1 thread)", "read"),
                      (f"I/O floor: read + float32 + Zarr write ({threads} threads)", "floor"),
                      ("model only (null model)", "model"),
                      ("tilerun.run (null model)", "run"),
                      ("tilerun.run (null model), no run report", "bare")):
        r = rows[key]
        lines.append(f"| {name} | {r['wall']:.2f} | {r['cpu']:.2f} | "
                     f"{r['cpu'] / px * 1e6:.4f} | {px / r['wall'] / 1e6:.2f} |")
    lines += [
        f"| **engine CPU** (run − model only) | | {engine_cpu:.2f} | "
        f"**{engine_cpu / px * 1e6:.4f}** | |",
        f"| run report's statistics (run − run without) | | "
        f"{run['cpu'] - rows['bare']['cpu']:.2f} | "
        f"{(run['cpu'] - rows['bare']['cpu']) / px * 1e6:.4f} | |",
        "",
        f"End-to-end wall ÷ I/O floor wall: **{run['wall'] / rows['floor']['wall']:.2f}** "
        f"(goal ≤ 1.3). Engine CPU per output pixel: **{engine_cpu / px * 1e6:.3f} µs** "
        f"(goal ≤ 0.10). Forward calls by batch size: {rows.get('batches', {})}.",
        "",
        "| codec | MB/s per CPU s | ratio |",
        "|---|---:|---:|",
        *(f"| {c['codec']} | {c['mb_per_cpu_s']:.0f} | {c['ratio']:.2f} |" for c in codecs),
        "",
        "| simulated device R (Mpx/s of tiles) | wall s | achieved Mpx/s | achieved ÷ R |",
        "|---:|---:|---:|---:|",
        *(f"| {s['rate']:g} | {s['wall']:.1f} | {s['achieved']:.2f} | **{s['ratio']:.3f}** |"
          for s in sim),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--rates", type=float, nargs="*", default=[5.0, 10.0, 20.0])
    parser.add_argument("--threads", type=int, default=None,
                        help="engine threads (default: tilerun's default)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tilerun-bench"))
    parser.add_argument("--skip-codecs", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from tilerun.engine import PredictOptions

    threads = args.threads or PredictOptions().thread_count
    scene = make_scene(args.workdir, args.size, 0)
    out = args.workdir / "pipeline-out.zarr"
    torch.manual_seed(0)
    null = NullModel().eval()
    rows: dict[str, Any] = {"read": read_alone(scene, args.size),
                            "floor": io_floor(scene, args.size, out, threads)}
    engine_run(scene, null, out, args.threads)  # warm-up: the first run pays page faults
    runs = [engine_run(scene, null, out, args.threads, report=report)
            for report in (True, False, True, False)]
    rows["run"], summary = min(runs[0::2], key=lambda r: r[0]["cpu"])
    rows["bare"] = min(runs[1::2], key=lambda r: r[0]["cpu"])[0]
    rows["batches"] = summary.batches
    rows["model"] = model_only(null, summary.tiles_run)
    codecs = [] if args.skip_codecs else codec_table(scene, args.size, args.workdir)
    sim = simulated(scene, out, args.rates, args.threads, TILE * TILE)
    text = report(args.size, rows, codecs, sim, threads)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "codecs": codecs, "simulated": sim},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
