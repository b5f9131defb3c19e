"""The benchmarks' synthetic scene: a seeded 3-band uint8 GeoTIFF of smooth noise octaves
plus per-pixel noise (512² tiled blocks, deflate, EPSG:32633), written block by block and
cached in a work folder, so scenes of any size cost no memory to make."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from _common import log

BANDS = 3
SCENE_VERSION = 1  # bump when the generator changes, to invalidate cached scenes
#: (feature size in px, amplitude) of the smooth noise octaves, plus per-pixel noise.
OCTAVES = ((1024, 60.0), (256, 35.0), (64, 20.0), (16, 8.0))
PIXEL_NOISE = 6.0
BLOCK = 512


def scene_path(workdir: Path, size: int, seed: int) -> Path:
    return workdir / f"scene-{size}-seed{seed}-v{SCENE_VERSION}.tif"


def _coarse_grids(size: int, seed: int) -> list[tuple[int, float, np.ndarray]]:
    """Per octave, a small random lattice (bands, n, n) covering the whole image."""
    rng = np.random.default_rng([seed, size, 0])
    grids = []
    for scale, amplitude in OCTAVES:
        n = size // scale + 2
        grids.append((scale, amplitude, rng.standard_normal((BANDS, n, n)).astype(np.float32)))
    return grids


def _bilinear(grid: np.ndarray, scale: int, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """Lattice ``grid`` (bands, n, n), one node every ``scale`` px, sampled on a pixel window."""
    gy = (np.arange(y0, y0 + h, dtype=np.float32) + 0.5) / scale
    gx = (np.arange(x0, x0 + w, dtype=np.float32) + 0.5) / scale
    iy, ix = np.floor(gy).astype(np.intp), np.floor(gx).astype(np.intp)
    fy, fx = (gy - iy)[:, None], (gx - ix)[None, :]
    # smoothstep weights give a softer, less blocky texture than plain bilinear
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    a = grid[:, iy[:, None], ix[None, :]]
    b = grid[:, iy[:, None], ix[None, :] + 1]
    c = grid[:, iy[:, None] + 1, ix[None, :]]
    d = grid[:, iy[:, None] + 1, ix[None, :] + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def make_scene(workdir: Path, size: int, seed: int) -> Path:
    """Create (or reuse) the seeded ``size × size`` scene; written 512 × 512 block by block."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    path = scene_path(workdir, size, seed)
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.tif")
    log(f"generating {size}×{size} scene -> {path}")
    start = time.perf_counter()
    grids = _coarse_grids(size, seed)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": BANDS,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        # 10 m pixels, upper-left corner in UTM zone 33N
        "transform": from_origin(500000.0, 5500000.0, 10.0, 10.0),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "interleave": "pixel",
        "BIGTIFF": "IF_SAFER",
    }
    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(tmp, "w", **profile) as dst:
        for by, y0 in enumerate(range(0, size, BLOCK)):
            for bx, x0 in enumerate(range(0, size, BLOCK)):
                h, w = min(BLOCK, size - y0), min(BLOCK, size - x0)
                value = np.full((BANDS, h, w), 128.0, np.float32)
                for scale, amplitude, grid in grids:
                    value += amplitude * _bilinear(grid, scale, y0, x0, h, w)
                rng = np.random.default_rng([seed, size, 1, by, bx])
                value += PIXEL_NOISE * rng.standard_normal((BANDS, h, w), dtype=np.float32)
                block = np.clip(np.rint(value), 0, 255).astype(np.uint8)
                dst.write(block, window=Window(x0, y0, w, h))
    os.replace(tmp, path)
    log(
        f"  scene written in {time.perf_counter() - start:.1f} s "
        f"({path.stat().st_size / 2**20:.0f} MiB)"
    )
    return path
