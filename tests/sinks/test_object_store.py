"""Outputs written straight into object storage (moto's S3 on 127.0.0.1): no rename anywhere.

Completion is a flag written last, resume reads the chunk records in the bucket, and the
single-writer lock is a lease object taken with conditional writes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import torch
import xarray as xr
import zarr
from click.testing import CliRunner
from conftest import interrupt_after, settle
from moto_s3 import moto_server, s3_client, s3_environment

import tilerun
from tilerun.cli import main
from tilerun.errors import OptionError, OutputError, OutputExistsError
from tilerun.models import build_unet, save_package
from tilerun.sample import write_scene, write_slide
from tilerun.sinks.layout.store import open_target, output_store
from tilerun.sinks.lease import LEASE_KEY, ObjectLock
from tilerun.sinks.objects import ObjectLocation, object_url

OPTIONS = {"tile": 64, "chunk": 64, "backend": "torch", "tissue": "none", "threads": 1}
ARGS = ["--tile", "64", "--chunk", "64", "--threads", "1", "--quiet", "--tissue", "none",
        "--backend", "torch"]
CHUNKS = 64  # a 512² scene in 64 px chunks


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as found:
        s3_client(found).create_bucket(Bucket="out")
        yield found


@pytest.fixture
def s3(endpoint, monkeypatch) -> object:
    """The environment a user sets for the storage library; a boto3 client to inspect."""
    for key, value in s3_environment(endpoint).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_client(endpoint)


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict[str, Path]:
    """A 512² scene, a model package and the local reference output."""
    root = tmp_path_factory.mktemp("object-store")
    write_scene(root / "scene.tif", 512, 512, seed=5)
    torch.manual_seed(0)
    save_package(build_unet("unet", in_channels=3, classes=3, base=16, depth=2),
                 root / "m.safetensors", mean=(120,) * 3, std=(60,) * 3)
    tilerun.run(root / "scene.tif", root / "m.safetensors", root / "ref.zarr",
                tilerun.PredictOptions(**OPTIONS))
    return {"scene": root / "scene.tif", "model": root / "m.safetensors",
            "reference": root / "ref.zarr"}


def _keys(client, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    pages = client.get_paginator("list_objects_v2").paginate(Bucket="out", Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _record(client, name: str) -> dict:  # type: ignore[no-untyped-def]
    body = client.get_object(Bucket="out", Key=f"{name}/zarr.json")["Body"].read()
    return json.loads(body)["attributes"]["tilerun"]


def _reference_logits(job) -> np.ndarray:  # type: ignore[no-untyped-def]
    return xr.open_zarr(job["reference"]).logits.values


def test_urls_are_told_from_paths():
    assert object_url("s3://bucket/a.zarr/") == "s3://bucket/a.zarr"
    assert object_url("gs://b/x.zarr") == "gs://b/x.zarr"
    assert object_url("out.zarr") is None and object_url(Path("s3:/b/x")) is None
    assert object_url("https://host/x.zarr") is None  # read-only for outputs


def test_a_run_writes_the_store_in_place_and_flags_it_complete_last(s3, job, monkeypatch):
    url = "s3://out/api.zarr"
    real, flags = zarr.consolidate_metadata, []

    def spy(store, *args, **kwargs):  # type: ignore[no-untyped-def]
        flags.append(_record(s3, "api.zarr")["complete"])
        return real(store, *args, **kwargs)

    monkeypatch.setattr(zarr, "consolidate_metadata", spy)
    ds = tilerun.predict(job["scene"], job["model"], url, **OPTIONS)
    assert flags == [False]  # every chunk and the metadata before the flag
    np.testing.assert_array_equal(ds.logits.values, _reference_logits(job))
    assert ds.rio.crs == xr.open_zarr(job["reference"], decode_coords="all").rio.crs
    record = _record(s3, "api.zarr")
    assert record["complete"] is True and record["chunks"] == CHUNKS
    keys = _keys(s3, "api.zarr/")
    assert not [k for k in keys if "tilerun.carry" in k or "tilerun.lock" in k]
    assert len([k for k in keys if k.startswith("api.zarr/tilerun/chunks_done/c/")]) == CHUNKS
    assert output_store(url).completed() is not None
    info = CliRunner().invoke(main, ["info", url])
    assert info.exit_code == 0 and f"{url}: complete ({CHUNKS} chunks)" in info.output
    again = CliRunner().invoke(main, ["predict", str(job["scene"]), "-o", url, "--model",
                                      str(job["model"]), *ARGS])
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.stderr


def test_an_interrupted_store_reads_as_unfinished_and_resumes(s3, job, tmp_path):
    url = "s3://out/stop.zarr"

    with pytest.raises(KeyboardInterrupt):
        tilerun.run(job["scene"], job["model"], url, tilerun.PredictOptions(**OPTIONS),
                    on_chunk=interrupt_after(5))
    settle(lambda: _keys(s3, "stop.zarr/"))
    assert _record(s3, "stop.zarr")["complete"] is False
    assert output_store(url).completed() is None
    assert ObjectLock(ObjectLocation(url)).holder() is None  # given up on the way out
    written = len(_keys(s3, "stop.zarr/tilerun/chunks_done/c/"))
    assert 5 <= written < CHUNKS
    info = CliRunner().invoke(main, ["info", url])
    assert info.output.startswith(f"{url}: incomplete, interrupted: {written}/{CHUNKS} chunks")
    export = CliRunner().invoke(main, ["export", url, str(tmp_path / "early.tif")])
    assert export.exit_code == 2 and "unfinished" in export.stderr  # nothing half done out
    assert not (tmp_path / "early.tif").exists()

    summary = tilerun.run(job["scene"], job["model"], url,
                          tilerun.PredictOptions(**OPTIONS, resume=True))
    assert summary.chunks_resumed == written and summary.chunks == CHUNKS - written
    ds = xr.open_zarr(open_target(url))
    np.testing.assert_allclose(ds.logits.values, _reference_logits(job), atol=1e-6)
    assert _record(s3, "stop.zarr")["complete"] is True
    assert not _keys(s3, "stop.zarr/tilerun.carry/")
    again = tilerun.run(job["scene"], job["model"], url,
                        tilerun.PredictOptions(**OPTIONS, resume=True))
    assert again.already_complete


def test_overwrite_replaces_and_a_foreign_prefix_is_refused(s3, job):
    url = "s3://out/over.zarr"
    tilerun.run(job["scene"], job["model"], url, tilerun.PredictOptions(**OPTIONS))
    with pytest.raises(OutputExistsError):
        tilerun.run(job["scene"], job["model"], url, tilerun.PredictOptions(**OPTIONS))
    s3.put_object(Bucket="out", Key="over.zarr/stale-object", Body=b"x")
    summary = tilerun.run(job["scene"], job["model"], url,
                          tilerun.PredictOptions(**{**OPTIONS, "tile": 128}, overwrite=True))
    assert summary.chunks == CHUNKS and _record(s3, "over.zarr")["tile"] == 128
    assert "over.zarr/stale-object" not in _keys(s3, "over.zarr/")  # the old store went whole

    foreign = zarr.open_group(ObjectLocation("s3://out/theirs.zarr").zarr_store(), mode="w")
    foreign.create_array("precious", shape=(4,), dtype="u1")
    with pytest.raises(OutputExistsError, match="tilerun did not write"):
        tilerun.run(job["scene"], job["model"], "s3://out/theirs.zarr",
                    tilerun.PredictOptions(**OPTIONS))
    assert "theirs.zarr/precious/zarr.json" in _keys(s3, "theirs.zarr/")

    s3.put_object(Bucket="out", Key="notes/readme.txt", Body=b"mine")
    with pytest.raises(OutputError, match="not a Zarr store"):
        tilerun.run(job["scene"], job["model"], "s3://out/notes",
                    tilerun.PredictOptions(**OPTIONS, overwrite=True))
    assert _keys(s3, "notes/") == ["notes/readme.txt"]


def test_an_unreachable_store_is_one_line_for_readers_too(s3, job, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    for args in (["info", "s3://out/x.zarr"],
                 ["export", "s3://out/x.zarr", str(tmp_path / "a.tif")],
                 ["predict", str(job["scene"]), "-o", "s3://out/x.zarr", "--model",
                  str(job["model"]), *ARGS, "--resume"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error: s3://out/x.zarr: the object store failed")
        assert len(result.stderr.strip().splitlines()) == 1


def test_bad_destinations_are_one_line_errors_before_any_work(s3, job):
    missing = CliRunner().invoke(main, ["predict", str(job["scene"]), "-o",
                                        "s3://no-such-bucket/x.zarr", "--model",
                                        str(job["model"]), *ARGS])
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error: s3://no-such-bucket/x.zarr: ")
    assert len(missing.stderr.strip().splitlines()) == 1
    with pytest.raises(OptionError, match="--zarr-format 3"):
        tilerun.run(job["scene"], job["model"], "s3://out/pyr.zarr",
                    tilerun.PredictOptions(**OPTIONS, pyramid="labels", zarr_format=2))
    assert not _keys(s3, "pyr.zarr/")


def test_the_lease_admits_one_writer_and_is_taken_over_when_stale(s3, job):
    location = ObjectLocation("s3://out/lease.zarr")
    first = ObjectLock(location)
    first.acquire("lease.zarr")
    try:
        assert first.holder() is not None
        with pytest.raises(OutputError, match="another run is writing it"):
            ObjectLock(location).acquire("lease.zarr")
        with pytest.raises(OutputError, match="another run is writing it"):
            tilerun.run(job["scene"], job["model"], location.url,
                        tilerun.PredictOptions(**OPTIONS))
    finally:
        first.release()
    assert location.get(LEASE_KEY) is None
    # a lease whose process is gone (on this host) is stale: taken over, not waited for
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    import socket

    location.put(LEASE_KEY, json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(),
                                        "token": "old"}).encode())
    taker = ObjectLock(location)
    taker.acquire("lease.zarr")
    try:
        found = location.get(LEASE_KEY)
        assert found is not None and json.loads(found.data)["token"] == taker.token
    finally:
        taker.release()


def test_of_two_runs_racing_for_the_lease_exactly_one_wins(s3):
    location = ObjectLocation("s3://out/race.zarr")
    locks = [ObjectLock(ObjectLocation(location.url)) for _ in range(4)]
    start, outcomes = threading.Barrier(len(locks)), []

    def take(lock: ObjectLock) -> None:
        start.wait()
        try:
            lock.acquire("race.zarr")
            outcomes.append("won")
        except OutputError:
            outcomes.append("refused")

    threads = [threading.Thread(target=take, args=(lock,)) for lock in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted(outcomes) == ["refused"] * 3 + ["won"]
    finally:
        for lock in locks:
            lock.release()


def test_a_two_worker_cluster_writes_straight_into_the_bucket(s3, job):
    url = "s3://out/cluster.zarr"
    summary = tilerun.run(job["scene"], job["model"], url,
                          tilerun.PredictOptions(**OPTIONS, workers=2))
    assert summary.chunks == CHUNKS
    ds = xr.open_zarr(open_target(url))
    np.testing.assert_allclose(ds.logits.values, _reference_logits(job), atol=1e-6)
    assert _record(s3, "cluster.zarr")["complete"] is True


def test_kill_minus_9_then_resume_in_the_bucket(s3, job):
    url = "s3://out/killed.zarr"
    cmd = [sys.executable, "-m", "tilerun", "predict", str(job["scene"]), "-o", url,
           "--model", str(job["model"]), *ARGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(_keys(s3, "killed.zarr/tilerun/chunks_done/c/")) >= 12:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(_keys(s3, "killed.zarr/tilerun/chunks_done/c/"))
    assert 0 < written < CHUNKS, "the run must be killed part-way"
    assert _record(s3, "killed.zarr")["complete"] is False  # a reader sees it unfinished
    resumed = CliRunner().invoke(main, ["predict", str(job["scene"]), "-o", url, "--model",
                                        str(job["model"]), *ARGS, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    record = _record(s3, "killed.zarr")
    assert record["complete"] is True and record["chunks_resumed"] >= written
    ds = xr.open_zarr(open_target(url))
    np.testing.assert_allclose(ds.logits.values, _reference_logits(job), atol=1e-6)


def test_exports_reports_and_comparisons_read_the_bucket(s3, job, tmp_path, monkeypatch):
    url = "s3://out/read.zarr"
    tilerun.run(job["scene"], job["model"], url, tilerun.PredictOptions(**OPTIONS))
    cog = tmp_path / "labels.tif"
    exported = CliRunner().invoke(main, ["export", url, str(cog)])
    assert exported.exit_code == 0, exported.output
    reference = xr.open_zarr(job["reference"], decode_coords="all")
    with rasterio.open(cog) as ds:
        assert ds.crs == reference.rio.crs and ds.transform == reference.rio.transform()
        np.testing.assert_array_equal(ds.read(1), reference.logits.argmax("class").values)
    monkeypatch.chdir(tmp_path)
    report = CliRunner().invoke(main, ["report", url])
    assert report.exit_code == 0, report.output
    look = CliRunner().invoke(main, ["quicklook", url, str(tmp_path / "look.png")])
    assert look.exit_code == 0 and (tmp_path / "look.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "read.report.html").read_text()  # a bucket's page lands here
    assert page.count("data:image/png;base64,") == 2  # its quicklook and entropy map
    compared = CliRunner().invoke(main, ["compare", url, str(job["reference"]), "--json"])
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.output)["agreement"] == 1.0


def test_a_slide_in_the_bucket_gets_its_viewer_pyramid_before_the_flag(s3, tmp_path, small_unet,
                                                                       monkeypatch):
    from tilerun.sinks.pyramids import ngff

    slide = tmp_path / "slide.tif"
    write_slide(slide, 512, tissue_fraction=0.5, seed=1)
    url = "s3://out/slide.zarr"
    real, flags = ngff.write_label_pyramid, []

    def spy(store, **options):  # type: ignore[no-untyped-def]
        flags.append(_record(s3, "slide.zarr")["complete"])
        return real(store, **options)

    monkeypatch.setattr(ngff, "write_label_pyramid", spy)
    tilerun.run(slide, small_unet, url,
                tilerun.PredictOptions(level=0, tile=64, chunk=128, backend="torch"))
    assert flags == [False]  # written while the store still said unfinished
    group = zarr.open_group(open_target(url), mode="r")
    assert group.attrs["tilerun"]["complete"] is True
    assert group["labels_pyramid"].attrs["ome"]["multiscales"][0]["datasets"]
    np.testing.assert_array_equal(np.asarray(group["labels_pyramid"]["1"][:]),
                                  np.asarray(group["labels"][:])[::2, ::2])
    assert "labels_pyramid" in json.loads(
        s3.get_object(Bucket="out", Key="slide.zarr/zarr.json")["Body"].read()
    )["consolidated_metadata"]["metadata"]  # listed for viewers that read consolidated metadata

