"""The GPU check's configuration, steps (timing, crash capture, time budget), scenes and
models (see ``gpu_check.py``)."""

from __future__ import annotations

import argparse
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import log
from _models import bench_unet

import tilerun
from tilerun.backends import CHOICES
from tilerun.engine import PredictOptions, RunSummary
from tilerun.sample import make_scene, write_scene

FP32_GOAL = 1e-4
BF16_GOAL = 3e-2
KEPT_GOAL = 0.90
BANDS, CLASSES, DEPTH = 3, 4, 4
CHECK_BASE = 16
BASE_TILE = 4096  # the big scene is mirrored copies of one in-memory scene of this edge
SAMPLE_PERIOD_S = 0.2
#: seconds of the budget a backend row needs left to start (compile: two cold compilations)
BACKEND_NEED_S = {"compile": 150.0}
DEFAULT_NEED_S = 30.0


class Interrupted(BaseException):
    """SIGTERM/SIGINT: stop measuring, print what is known."""


def out(text: str = "") -> None:
    print(text, flush=True)




# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    device: str
    precision: str
    sizes: tuple[int, ...]
    scene_size: int
    check_size: int
    warmup_size: int
    tile: int
    overlap: int
    batch_size: int
    chunk: int
    threads: int
    min_batches: int
    max_batches: int
    warmup_batches: int
    seed: int
    workdir: Path
    budget_s: float
    backends: tuple[str, ...]
    backend_size: int

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def options(self, device: str | None = None, precision: str | None = None,
                backend: str = "auto") -> PredictOptions:
        return PredictOptions(
            tile=self.tile, overlap=self.overlap, batch_size=self.batch_size, chunk=self.chunk,
            threads=self.threads, device=device or self.device,
            precision=precision or self.precision, overwrite=True, tissue="none",
            backend=backend,
        )


def parse_args(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(description="GPU check for tilerun: is the GPU output right, "
                                "and how much of the model's speed is kept?")
    p.add_argument("--quick", action="store_true", help="smoke test: 4096² scene, few batches")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (smoke test)")
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"),
                   help="precision of the throughput runs (default bf16)")
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 64],
                   help="U-Net base widths of the throughput rows (default 16 64)")
    p.add_argument("--scene-size", type=int, help="throughput scene edge (16384; quick 4096)")
    p.add_argument("--check-size", type=int, default=1024, help="correctness scene edge")
    p.add_argument("--warmup-size", type=int, default=2048, help="warm-up scene edge")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64, help="overlap in pixels")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--chunk", type=int, default=2048)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--min-batches", type=int, help="fewest timed model-only batches (50; quick 3)")
    p.add_argument("--max-batches", type=int, help="most timed model-only batches (400; quick 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/tilerun-gpu"))
    p.add_argument("--budget", type=float, default=450.0,
                   help="seconds; steps that would start after this are skipped (default 450)")
    p.add_argument("--backends", nargs="*", choices=CHOICES,
                   help="backend rows (cuda: torch compile; cpu: torch onnxruntime; none: "
                        "no rows)")
    p.add_argument("--backend-size", type=int,
                   help="U-Net base width of the backend rows (default the largest of --sizes)")
    a = p.parse_args(argv)
    scene = a.scene_size or (4096 if a.quick else 16384)
    cuda = a.device.startswith("cuda")
    backends = a.backends if a.backends is not None else (
        ["torch", "compile"] if cuda else ["torch", "onnxruntime"])
    return Config(
        device=a.device, precision=a.precision, sizes=tuple(a.sizes), scene_size=scene,
        check_size=min(a.check_size, scene), warmup_size=min(a.warmup_size, scene),
        tile=a.tile, overlap=a.overlap, batch_size=a.batch_size, chunk=a.chunk,
        threads=a.threads, min_batches=a.min_batches or (3 if a.quick else 50),
        max_batches=a.max_batches or (20 if a.quick else 400),
        warmup_batches=1 if a.quick else 5, seed=a.seed, workdir=a.workdir, budget_s=a.budget,
        backends=tuple(dict.fromkeys(backends)), backend_size=a.backend_size or max(a.sizes),
    )


# --------------------------------------------------------------------------------------------
# Steps: timing, crash capture, time budget
# --------------------------------------------------------------------------------------------


@dataclass
class Steps:
    budget_s: float
    start: float = field(default_factory=time.perf_counter)
    rows: list[tuple[str, float, str]] = field(default_factory=list)

    @property
    def crashed(self) -> bool:
        return any(status.startswith("crashed") for _, _, status in self.rows)

    def left(self) -> float:
        """Seconds of the budget left (negative: over it)."""
        return self.budget_s - (time.perf_counter() - self.start)

    def skip(self, name: str, why: str) -> None:
        self.rows.append((name, 0.0, f"skipped ({why})"))
        log(f"skip {name}: {why}")

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run one step; a crash is recorded (traceback on stderr) and None returned."""
        if self.left() < 0:
            self.skip(name, f"over the {self.budget_s:.0f} s budget")
            return None
        log(f"start {name}")
        t0 = time.perf_counter()
        try:
            result = fn()
        except Interrupted:
            self.rows.append((name, time.perf_counter() - t0, "interrupted"))
            raise
        except Exception as err:  # reported; the other steps still run
            traceback.print_exc()
            first = (str(err) or type(err).__name__).splitlines()[0][:200]
            self.rows.append((name, time.perf_counter() - t0,
                              f"crashed: {type(err).__name__}: {first}"))
            return None
        seconds = time.perf_counter() - t0
        self.rows.append((name, seconds, "ok"))
        log(f"done {name} in {seconds:.1f} s")
        return result

    def report(self) -> None:
        out("\n## Steps\n")
        out("| step | seconds | status |\n|---|---:|---|")
        for name, seconds, status in self.rows:
            out(f"| {name} | {seconds:.1f} | {status} |")
        out(f"\nTotal: {time.perf_counter() - self.start:.1f} s")


# --------------------------------------------------------------------------------------------
# Scenes and models
# --------------------------------------------------------------------------------------------


def scene(workdir: Path, size: int, seed: int) -> Path:
    """A cached, seeded ``size²`` 3-band uint8 GeoTIFF (tiled 512², deflate).

    Up to 4096² it is ``tilerun.sample``'s scene; larger ones are mirrored copies of the 4096²
    scene (seamless, and never whole in memory), written with GDAL's multithreaded deflate.
    """
    path = workdir / f"scene-{size}-seed{seed}.tif"
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.tif")
    t0 = time.perf_counter()
    if size <= BASE_TILE:
        write_scene(tmp, size, size, seed=seed)
    else:
        _write_mirrored(tmp, size, make_scene(BASE_TILE, BASE_TILE, seed).image)
    os.replace(tmp, path)
    log(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    return path


def _write_mirrored(path: Path, size: int, base: np.ndarray) -> None:
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from tilerun.sample import CRS, ORIGIN, PIXEL_SIZE

    edge = base.shape[1]
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": BANDS, "dtype": "uint8",
        "crs": CRS, "transform": from_origin(*ORIGIN, PIXEL_SIZE, PIXEL_SIZE),
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate",
        "photometric": "RGB", "BIGTIFF": "IF_SAFER", "NUM_THREADS": "ALL_CPUS",
    }
    with rasterio.open(path, "w", **profile) as dst:
        for i, y0 in enumerate(range(0, size, edge)):
            for j, x0 in enumerate(range(0, size, edge)):
                block = base[:, :: -1 if i % 2 else 1, :: -1 if j % 2 else 1]
                h, w = min(edge, size - y0), min(edge, size - x0)
                dst.write(np.ascontiguousarray(block[:, :h, :w]), window=Window(x0, y0, w, h))


def build_model(base: int) -> torch.nn.Module:
    return bench_unet(base, DEPTH, BANDS, CLASSES)


def run_once(
    source: Path, model: torch.nn.Module, out_path: Path, options: PredictOptions
) -> tuple[RunSummary, float]:
    """``tilerun.run`` and its wall time."""
    t0 = time.perf_counter()
    summary = tilerun.run(source, model, out_path, options)
    return summary, time.perf_counter() - t0


def read_logits(path: Path) -> np.ndarray:
    import xarray as xr

    with xr.open_zarr(path) as ds:
        return np.asarray(ds.logits.values, np.float64)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)



def free(cfg: Config) -> None:
    """The model is gone; free its cached GPU blocks."""
    if cfg.cuda:
        torch.cuda.empty_cache()
