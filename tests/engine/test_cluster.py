"""Cluster runs (dask.distributed) equal single-process runs, and survive losing a worker."""

from __future__ import annotations

import os
import signal
import threading
import time

import distributed
import numpy as np
import pytest
import xarray as xr

import tilerun


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local:
        yield local


@pytest.fixture
def scene(tmp_path):
    from tilerun.sample import write_scene

    path = tmp_path / "scene.tif"
    write_scene(path, 384, 320, seed=2)
    return path


def test_two_workers_equal_threads(tmp_path, scene, small_unet, cluster):
    options = {"tile": 64, "chunk": 64, "mean": (120,) * 3, "std": (60,) * 3}
    local = tilerun.predict(scene, small_unet, tmp_path / "a.zarr", **options)
    seen = []
    with distributed.Client(cluster) as client:
        remote = tilerun.predict(scene, small_unet, tmp_path / "b.zarr", client=client,
                                 on_chunk=seen.append, **options)
        workers = {w for w in client.run(os.getpid).values()}
    np.testing.assert_allclose(remote.logits.values, local.logits.values, atol=1e-6)
    assert len(seen) == 30 and len({r.index for r in seen}) == 30  # each chunk written once
    assert len(workers) == 2
    assert remote.attrs["tilerun"]["tiles_run"] == remote.attrs["tilerun"]["tiles_minimum"]
    # The run report's statistics come back inside the chunk results, as in a threaded run.
    mine, theirs = local.attrs["tilerun"]["report"], remote.attrs["tilerun"]["report"]
    assert theirs["bands"] == mine["bands"] and theirs["chunks"] == 30
    assert theirs["output"]["classes"] == mine["output"]["classes"]
    assert theirs["output"]["entropy_mean"] == pytest.approx(mine["output"]["entropy_mean"])
    assert theirs["timing"]["batches"] > 0 and 1 <= theirs["timing"]["devices"] <= 2


def test_losing_a_worker_mid_job_still_completes(tmp_path, scene, small_unet):
    options = {"tile": 64, "chunk": 32, "mean": (120,) * 3, "std": (60,) * 3}
    reference = tilerun.predict(scene, small_unet, tmp_path / "ref.zarr", **options)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local, \
            distributed.Client(local) as client:
        pids = list(client.run(os.getpid).values())
        written = []

        def kill_after_some(result):
            written.append(result)
            if len(written) == 10:
                os.kill(pids[0], signal.SIGKILL)

        done = threading.Event()
        out = {}

        def go():
            out["ds"] = tilerun.predict(scene, small_unet, tmp_path / "o.zarr", client=client,
                                        on_chunk=kill_after_some, **options)
            done.set()

        worker = threading.Thread(target=go)
        worker.start()
        deadline = time.time() + 300
        while not done.is_set() and time.time() < deadline:
            time.sleep(0.2)
        worker.join(timeout=5)
    assert done.is_set(), "the job did not finish after a worker was killed"
    np.testing.assert_allclose(out["ds"].logits.values, reference.logits.values, atol=1e-6)
    assert xr.open_zarr(tmp_path / "o.zarr").attrs["tilerun"]["complete"] is True
