"""A real foreign model: ukis-csmask's 6-band L2A cloud model, tilerun against the package's own
tiling loop (``ukis_csmask.mask.CSmask``), on the same Sentinel-2 scene (issue 18).

The scene: the real Sentinel-2 L2A crop in ../shared/data (320² px at 100 m; the 20 m-class
bands repeated 2× onto the 100 m grid), as float32 reflectance, mirror-tiled up to
``--size``² px (the issue's 4096² costs minutes per contender on 2 shared cores; the default
is smaller and the result says which size ran). Each contender runs in a fresh child process
(its own peak RSS, nothing warm from the other):

* ``peer``: ``CSmask(image, band_order, product_level="l2a", batch_size=8)`` on the whole
  array in memory (its own tiling: 256 px tiles, 20 % overlap, Tukey blending);
* ``tilerun``: ``tilerun.run(scene.tif, "csmask:6band-l2a", out.zarr)`` — the package's
  published spec by name, the GeoTIFF read in chunks, labels to Zarr, ``--backend auto``;
  ``imports s`` is importing the engine (torch, Dask, Zarr, the readers), ``start-up s`` what
  the run spent before the first tile (loading the model, opening and checking the scene,
  the probe batch, choosing the backend: for an ONNX model ONNX Runtime is its own reference,
  so nothing is converted, checked or raced).

Columns: wall s, CPU s (user + system of the child), peak RSS MiB (``ru_maxrss``), and the
label agreement of tilerun with the peer. Usage: ``python benchmarks/bench_foreign.py
[--size 1280] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SCENE = HERE.parent.parent / "shared" / "data" / "geotiff" / "rio-tiler-pds" / \
    "S2A_29RKH_20200219_0_L2A"
BANDS = (("B02", 1), ("B03", 1), ("B04", 1), ("B08", 1), ("B11", 2), ("B12", 2))
NAMES = ["blue", "green", "red", "nir", "swir16", "swir22"]

PEER = """
import numpy as np, sys, time, warnings
warnings.simplefilter("ignore")
from ukis_csmask.mask import CSmask
image = np.moveaxis(np.load(sys.argv[1]), 0, -1).copy()
start = time.perf_counter()
labels = CSmask(image, band_order={names!r}, product_level="l2a", batch_size=8).csm[..., 0]
np.save(sys.argv[2], labels)
print(time.perf_counter() - start)
{usage}
"""

TILERUN = """
import sys, time, warnings
warnings.simplefilter("ignore")
import tilerun
from tilerun.engine import PredictOptions
first = []
begin = time.perf_counter()
run = tilerun.run  # imports the engine: torch, Dask, Zarr, the readers
start = time.perf_counter()
summary = run(sys.argv[1], "csmask:6band-l2a", sys.argv[2],
              PredictOptions(output=("labels",), batch_size=8),
              on_start=lambda *a: first.append(time.perf_counter()))
print(time.perf_counter() - start, (first[0] if first else start) - start, summary.backend,
      start - begin)
{usage}
"""


#: what each child prints last: its own CPU seconds and peak RSS (RUSAGE_CHILDREN would give
#: the largest of all children so far)
USAGE = """
import resource
u = resource.getrusage(resource.RUSAGE_SELF)
print(u.ru_utime + u.ru_stime, u.ru_maxrss / 1024)
"""


def scene(size: int, folder: Path) -> tuple[Path, Path]:
    """The reflectance scene mirror-tiled to ``size``², as a GeoTIFF and a ``.npy``."""
    import rasterio

    layers, profile = [], None
    for band, factor in BANDS:
        with rasterio.open(SCENE / f"{band}.tif") as f:
            dn = f.read(1).astype(np.float32)
            profile = profile or f.profile
        layers.append(np.kron(dn, np.ones((factor, factor), np.float32)) * np.float32(1e-4))
    base = np.stack(layers)
    reps = -(-size // base.shape[1])
    big = np.concatenate([np.concatenate([base if (i + j) % 2 == 0 else base[:, ::-1]
                                          for j in range(reps)], axis=2)
                          for i in range(reps)], axis=1)[:, :size, :size].copy()
    assert profile is not None
    profile.update(count=6, dtype="float32", nodata=None, width=size, height=size,
                   tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    tif, npy = folder / "scene.tif", folder / "scene.npy"
    with rasterio.open(tif, "w", **profile) as f:
        f.write(big)
    np.save(npy, big)
    return tif, npy


def child(code: str, *args: str) -> dict[str, object]:
    """Run ``code`` in a fresh Python; its wall, CPU and peak RSS, and what it printed."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code.replace("{usage}", USAGE), *args],
                          capture_output=True, text=True, check=True, cwd=HERE.parent)
    wall = time.perf_counter() - start
    printed = done.stdout.split()
    return {"wall_s": wall, "cpu_s": float(printed[-2]), "peak_rss_mib": float(printed[-1]),
            "printed": printed[:-2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1280)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tif, npy = scene(args.size, folder)
        peer = child(PEER.replace("{names!r}", repr(NAMES)), str(npy), str(folder / "peer.npy"))
        ours = child(TILERUN, str(tif), str(folder / "o.zarr"))
        import zarr

        labels = np.asarray(zarr.open_group(str(folder / "o.zarr"))["labels"][:])
        agreement = float((labels == np.load(folder / "peer.npy")).mean())
    printed = ours.pop("printed")
    assert isinstance(printed, list)
    ours["startup_s"], ours["backend"] = float(printed[1]), printed[2]
    ours["import_s"] = float(printed[3])
    peer.pop("printed")
    result = {"size": args.size, "peer": peer, "tilerun": ours, "agreement": agreement}
    print(f"ukis-csmask 6band-l2a on {args.size}² px (real Sentinel-2 L2A, mirror-tiled)")
    print("| contender | wall s | CPU s | peak RSS MiB | imports s | start-up s |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| peer (CSmask) | {peer['wall_s']:.1f} | {peer['cpu_s']:.1f} | "
          f"{peer['peak_rss_mib']:.0f} | – | – |")
    print(f"| tilerun ({ours['backend']}) | {ours['wall_s']:.1f} | {ours['cpu_s']:.1f} | "
          f"{ours['peak_rss_mib']:.0f} | {ours['import_s']:.1f} | {ours['startup_s']:.1f} |")
    print(f"label agreement tilerun vs peer: {agreement:.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
