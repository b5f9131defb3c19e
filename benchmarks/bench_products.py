"""Reading real-product layouts: per-band files at two resolutions vs one stacked file.

A Sentinel-2-like scene: four uint16 bands at the fine resolution and two at half of it, as
per-band tiled GeoTIFFs (what a STAC item points at), read window by window through
:class:`~tilerun.sources.StackSource` (the coarse bands resampled per window), against the same
six bands stacked into one file beforehand (by hand, resampled once). Also the cost of applying
a scale/offset in the normaliser. Reports ratios measured in one run.

    python benchmarks/bench_products.py [--size 4096] [--window 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin

from tilerun.geometry import Window
from tilerun.models import ModelSpec, as_model
from tilerun.models.normalise import Normalizer
from tilerun.sources import BandFile, GeoTIFFSource, ScaleOffset, Source, StackSource

PROFILE = dict(driver="GTiff", dtype="uint16", crs="EPSG:32629", tiled=True, blockxsize=512,
               blockysize=512, compress="deflate", nodata=0)


def _scene(folder: Path, size: int) -> tuple[list[Path], Path]:
    rng = np.random.default_rng(0)
    files, bands = [], []
    for k in range(6):
        edge = size if k < 4 else size // 2
        pixel = 10.0 if k < 4 else 20.0
        data = rng.integers(500, 8000, (edge, edge), dtype=np.uint16)
        path = folder / f"band{k}.tif"
        with rasterio.open(path, "w", width=edge, height=edge, count=1,
                           transform=from_origin(300000, 2800000, pixel, pixel), **PROFILE) as f:
            f.write(data, 1)
        files.append(path)
        bands.append(data if k < 4 else np.repeat(np.repeat(data, 2, 0), 2, 1))
    stacked = folder / "stacked.tif"
    with rasterio.open(stacked, "w", width=size, height=size, count=6, interleave="band",
                       transform=from_origin(300000, 2800000, 10, 10), **PROFILE) as f:
        f.write(np.stack(bands))
    return files, stacked


def _read_all(source: Source, window: int) -> float:
    _, height, width = source.shape
    start = time.perf_counter()
    for y in range(0, height, window):
        for x in range(0, width, window):
            source.read(Window(y, x, min(window, height - y), min(window, width - x)))
    return time.perf_counter() - start


def _normalise(scaling: ScaleOffset | None, repeats: int) -> float:
    handle = as_model(torch.nn.Conv2d(6, 2, 1),
                      spec=ModelSpec(bands=6, mean=(0.3,) * 6, std=(0.1,) * 6))
    norm = Normalizer.for_model(handle, 6, np.dtype(np.float32), scaling)
    pixels = torch.randint(500, 8000, (6, 1024, 1024), dtype=torch.int32)
    start = time.perf_counter()
    for _ in range(repeats * 10):
        norm(pixels, None)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files, stacked = _scene(Path(tmp), args.size)
        for method in ("nearest", "bilinear"):
            stack = StackSource([BandFile(str(p)) for p in files], resampling=method)
            single = GeoTIFFSource(stacked)
            t_stack = min(_read_all(stack, args.window) for _ in range(args.repeats))
            t_single = min(_read_all(single, args.window) for _ in range(args.repeats))
            print(f"{args.size}² px, {args.window}² windows, {method}: per-band files "
                  f"{t_stack:.2f} s, one stacked file {t_single:.2f} s, "
                  f"ratio {t_stack / t_single:.2f}")
    scaling = ScaleOffset((1e-4,) * 6, (-0.1,) * 6, "bench")
    plain, scaled = _normalise(None, args.repeats), _normalise(scaling, args.repeats)
    print(f"normalising 6×1024² int32: plain {plain:.3f} s, with scale/offset {scaled:.3f} s, "
          f"ratio {scaled / plain:.2f}")


if __name__ == "__main__":
    main()
