"""Jobs of many scenes: each output equals its single run, bad inputs fail alone, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest
import xarray as xr

import tilerun
from tilerun.engine.job import JobEvents, predict_many
from tilerun.sample import write_scene
from tilerun.sinks.job_summary import JOB_FILE, read_job

OPTIONS = {"tile": 32, "chunk": 64, "mean": (120,) * 3, "std": (60,) * 3, "tissue": "none",
           "backend": "torch"}


@pytest.fixture
def scenes(tmp_path: Path) -> Path:
    """Four scenes of different sizes (one smaller than a tile), a corrupt one."""
    folder = tmp_path / "scenes"
    folder.mkdir()
    for n, (h, w) in enumerate([(96, 130), (64, 64), (150, 90), (20, 24)]):
        write_scene(folder / f"s{n}.tif", h, w, seed=n)
    (folder / "corrupt.tif").write_bytes(b"II*\x00 not really a TIFF")
    return folder


def _logits(path: str | Path) -> np.ndarray:
    return xr.open_zarr(path).logits.values


def _same(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to float rounding: a job's batches mix scenes, and a convolution over a batch
    of another size may round differently (by ~1e-7) — as a single run's batches do."""
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_mixed_inputs_equal_single_runs_and_fail_alone(tmp_path, scenes, small_unet):
    seen: list[tuple[str, str]] = []

    class Events(JobEvents):
        def scene_done(self, index, scene):
            seen.append((Path(scene.input).name, scene.status))

    missing = tmp_path / "missing.tif"
    job = predict_many([scenes, missing], small_unet, tmp_path / "out",
                       tilerun.PredictOptions(**OPTIONS), events=Events())
    status = {Path(s.input).name: s.status for s in job.scenes}
    assert status == {"corrupt.tif": "failed", "s0.tif": "done", "s1.tif": "done",
                      "s2.tif": "done", "s3.tif": "done", "missing.tif": "failed"}
    assert sorted(seen) == sorted(status.items())
    assert job.exit_code == 2 and job.count("done") == 4 and job.count("failed") == 2
    errors = {Path(s.input).name: s.error for s in job.scenes if s.error}
    assert all("\n" not in e and e.startswith(str(scenes.parent)) for e in errors.values())
    assert "missing.tif: no such file" in errors["missing.tif"]
    assert not (tmp_path / "out" / "corrupt.zarr").exists()
    assert not (tmp_path / "out" / "corrupt.zarr.partial").exists()
    for n in range(4):
        single = tilerun.predict(scenes / f"s{n}.tif", small_unet, tmp_path / f"single{n}.zarr",
                                 **OPTIONS)
        _same(_logits(tmp_path / "out" / f"s{n}.zarr"), single.logits.values)
        done = next(s for s in job.scenes if s.input.endswith(f"s{n}.tif"))
        assert done.tiles == single.attrs["tilerun"]["tiles_run"] > 0
    record = json.loads((tmp_path / "out" / JOB_FILE).read_text())
    assert record["totals"]["done"] == 4 and record["exit_code"] == 2 and record["finished"]
    assert read_job(tmp_path / "out") == job


def test_resume_skips_done_retries_failed_and_equals_an_uninterrupted_job(
        tmp_path, scenes, small_unet):
    out = tmp_path / "out"
    options = tilerun.PredictOptions(**OPTIONS)
    (scenes / "corrupt.tif").unlink()
    first = predict_many(scenes, small_unet, out, options)
    assert first.exit_code == 0
    # s2 failed last time (its output gone), s1 was interrupted (only its staging store left).
    shutil.rmtree(out / "s2.zarr")
    shutil.move(out / "s1.zarr", out / "s1.zarr.partial")
    again = predict_many(scenes, small_unet, out, tilerun.PredictOptions(**OPTIONS, resume=True))
    status = {Path(s.input).name: s.status for s in again.scenes}
    assert status == {"s0.tif": "skipped", "s1.tif": "done", "s2.tif": "done",
                      "s3.tif": "skipped"}
    assert next(s for s in again.scenes if s.input.endswith("s1.tif")).chunks_resumed > 0
    assert again.exit_code == 0
    fresh = predict_many(scenes, small_unet, tmp_path / "fresh", options)
    for scene in fresh.scenes:
        name = Path(scene.output).name
        _same(_logits(out / name), _logits(scene.output))
    # Without --resume, finished outputs are not overwritten: each scene fails alone.
    refused = predict_many(scenes, small_unet, out, options)
    assert refused.count("failed") == 4 and "already exists" in (refused.scenes[0].error or "")


def test_stac_items_with_one_asset_run_as_their_files(tmp_path, scenes, small_unet):
    (scenes / "corrupt.tif").unlink()
    items = []
    for path in sorted(scenes.glob("*.tif")):
        item = pystac.Item(f"item-{path.stem}", None, None,
                           pystac.utils.str_to_datetime("2024-06-01T00:00:00Z"), {})
        item.add_asset("data", pystac.Asset(str(path), media_type=pystac.MediaType.COG,
                                            roles=["data"]))
        items.append(item)
    job = predict_many(pystac.ItemCollection(items), small_unet, tmp_path / "out",
                       tilerun.PredictOptions(**OPTIONS))
    assert [Path(s.output).name for s in job.scenes] == [f"item-s{n}.zarr" for n in range(4)]
    assert job.exit_code == 0
    single = tilerun.predict(scenes / "s2.tif", small_unet, tmp_path / "single.zarr", **OPTIONS)
    _same(_logits(tmp_path / "out" / "item-s2.zarr"), single.logits.values)


def test_two_worker_cluster_job_equals_threaded_job(tmp_path, scenes, small_unet):
    distributed = pytest.importorskip("distributed")
    (scenes / "corrupt.tif").unlink()
    threaded = predict_many(scenes, small_unet, tmp_path / "threads",
                            tilerun.PredictOptions(**OPTIONS))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        clustered = predict_many([*sorted(scenes.glob("*.tif")), tmp_path / "missing.tif"],
                                 small_unet, tmp_path / "cluster",
                                 tilerun.PredictOptions(**OPTIONS), client=client)
        workers = len(client.run(lambda: 1))
    assert workers == 2
    assert [s.status for s in clustered.scenes] == ["done"] * 4 + ["failed"]
    for scene in threaded.scenes:
        name = Path(scene.output).name
        _same(_logits(tmp_path / "cluster" / name), _logits(scene.output))
    assert sum(s.tiles for s in clustered.scenes) == threaded.tiles


def test_an_object_store_output_folder_holds_the_stores_and_the_record(tmp_path, scenes,
                                                                       small_unet):
    (scenes / "corrupt.tif").unlink()
    url = f"file://{tmp_path}/bucket/predictions"
    job = predict_many(sorted(scenes.glob("s[01].tif")), small_unet, url,
                       tilerun.PredictOptions(**OPTIONS))
    assert [s.output for s in job.scenes] == [f"{url}/s0.zarr", f"{url}/s1.zarr"]
    assert job.exit_code == 0 and read_job(url) == job
    single = tilerun.predict(scenes / "s1.tif", small_unet, tmp_path / "single.zarr", **OPTIONS)
    from tilerun.sinks.layout.store import open_target

    _same(xr.open_zarr(open_target(f"{url}/s1.zarr")).logits.values, single.logits.values)
    again = predict_many(sorted(scenes.glob("s[01].tif")), small_unet, url,
                         tilerun.PredictOptions(**OPTIONS, resume=True))
    assert [s.status for s in again.scenes] == ["skipped", "skipped"]


ITEMS = ("S2A_29RKH_20200219_0_L2A_crop", "LC08_L2SP_001062_20201031_20201106_02_T2_5pct")


def test_a_real_item_collection_runs_each_item_by_band_name(tmp_path, small_unet):
    """The Items' hrefs are relative to the collection's own folder; each output equals the
    single run of its Item file."""
    from conftest import shared_file

    collection = shared_file("stac/written-here/s2_l8_itemcollection.json")
    options = {**OPTIONS, "bands": ("red", "green", "blue")}
    job = predict_many([collection], small_unet, tmp_path / "out",
                       tilerun.PredictOptions(**options))
    assert job.exit_code == 0 and job.count("done") == 2, [s.error for s in job.scenes]
    # The two Items differ in their scale/offset: each scene is normalised with its own.
    assert {Path(s.output).name for s in job.scenes} == {f"{n}.zarr" for n in ITEMS}
    for scene in job.scenes:
        name = Path(scene.output).stem
        item = shared_file(f"stac/written-here/{name}.item.json")
        single = tilerun.predict(item, small_unet, tmp_path / f"{name}.zarr", **options)
        _same(_logits(scene.output), single.logits.values)
