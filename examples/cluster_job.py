"""One scene split across a Dask cluster: here a local one; a SLURM or Kubernetes cluster works
the same way (see the README).

    python examples/cluster_job.py /tmp/tilerun-cluster

Each worker receives the model once, picks its own device, and writes its chunks straight into
the Zarr store; the result equals a single-process run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from distributed import Client, LocalCluster

import tilerun
from tilerun.models import build_unet
from tilerun.sample import write_scene


def main(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    scene = workdir / "scene.tif"
    write_scene(scene, 1024, 1024, seed=4)
    torch.manual_seed(0)
    model = build_unet("unet", in_channels=3, classes=4, base=8, depth=3).eval()
    options = {"tile": 128, "chunk": 256, "mean": (120,) * 3, "std": (60,) * 3,
               "overwrite": True}

    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
        print("dashboard:", client.dashboard_link)
        done: list[object] = []
        ds = tilerun.predict(scene, model, workdir / "cluster.zarr", client=client,
                             on_chunk=done.append, **options)
        print(f"{len(done)} chunks written by {len(client.scheduler_info()['workers'])} workers")

    single = tilerun.predict(scene, model, workdir / "single.zarr", **options)
    diff = float(np.nanmax(np.abs(ds.logits.values - single.logits.values)))
    print(f"max |cluster - single process| = {diff:.2e}")
    print(xr.open_zarr(workdir / "cluster.zarr").attrs["tilerun"]["tiles_run"], "tiles")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tilerun-cluster"))
