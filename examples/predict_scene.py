"""End-to-end example of the Python API: write a sample scene, package a U-Net, predict, inspect.

    python examples/predict_scene.py /tmp/tilerun-example

The U-Net here is untrained (seeded), so the labels are meaningless; the example shows the
calls, the georeferenced output and the run summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rioxarray  # noqa: F401  (adds .rio to xarray objects)
import torch

import tilerun
from tilerun.models import build_unet, save_package
from tilerun.sample import CLASSES, write_scene


def main(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    scene = workdir / "scene.tif"
    write_scene(scene, 768, 768, seed=1)

    torch.manual_seed(0)
    unet = build_unet("unet", in_channels=3, classes=len(CLASSES), base=8, depth=3)
    package = workdir / "unet.safetensors"
    save_package(unet, package, mean=(120,) * 3, std=(60,) * 3, class_names=CLASSES)

    summary = tilerun.run(
        scene,
        str(package),
        workdir / "scene.zarr",
        tilerun.PredictOptions(
            tile=128, overlap=0.25, chunk=256, output=("logits", "labels"), overwrite=True
        ),
    )
    print(
        f"{summary.tiles_run} tiles ({summary.recompute_ratio:.2f}× minimum), "
        f"{summary.chunks} chunks, {summary.seconds:.1f} s"
    )

    import xarray as xr

    ds = xr.open_zarr(workdir / "scene.zarr", decode_coords="all")
    print(ds)
    print("CRS:", ds.rio.crs, "\ntransform:", ds.rio.transform())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tilerun-example"))
