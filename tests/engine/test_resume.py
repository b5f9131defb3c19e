"""Resume after kill -9, completion records, and one writer at a time."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr
from click.testing import CliRunner

import tilerun
from tilerun.blending import Blend
from tilerun.cli import main
from tilerun.engine import ChunkPlan
from tilerun.errors import OutputError
from tilerun.geometry import make_grid
from tilerun.models import build_unet, save_package
from tilerun.sample import write_scene
from tilerun.sinks.layout.store import DONE
from tilerun.sinks.lease import RunLock

ARGS = ["--tile", "64", "--chunk", "64", "--threads", "1", "--quiet", "--tissue", "none"]


@pytest.fixture
def job(tmp_path):
    scene = tmp_path / "scene.tif"
    write_scene(scene, 512, 512, seed=5)
    torch.manual_seed(0)
    package = tmp_path / "m.safetensors"
    save_package(build_unet("unet", in_channels=3, classes=3, base=16, depth=2), package,
                 mean=(120,) * 3, std=(60,) * 3)
    return scene, package


def _done_files(partial: Path) -> list[Path]:
    return sorted(p for p in (partial / DONE / "c").rglob("*") if p.is_file())


def test_kill_minus_9_then_resume_equals_uninterrupted(tmp_path, job):
    scene, package = job
    reference = tmp_path / "ref.zarr"
    result = CliRunner().invoke(main, ["predict", str(scene), "-o", str(reference), "--model",
                                       str(package), *ARGS])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.zarr"
    partial = out.with_name("out.zarr.partial")
    cmd = [sys.executable, "-m", "tilerun", "predict", str(scene), "-o", str(out),
           "--model", str(package), *ARGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if partial.exists() and len(_done_files(partial)) >= 24:  # of 64 chunks
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "killed run must not look complete"
    finished = _done_files(partial)
    assert 0 < len(finished) < 64
    info = CliRunner().invoke(main, ["info", str(out)])
    assert "incomplete, interrupted" in info.output and f"{len(finished)}/64" in info.output

    different = CliRunner().invoke(main, ["predict", str(scene), "-o", str(out), "--model",
                                          str(package), *ARGS, "--resume", "--tile", "128"])
    assert different.exit_code == 2 and "different run" in different.stderr
    assert _done_files(partial) == finished  # the interrupted run's work is kept
    fresh = CliRunner().invoke(main, ["predict", str(scene), "-o", str(out), "--model",
                                      str(package), *ARGS, "--tile", "128"])
    assert fresh.exit_code == 0  # without --resume: started afresh
    assert xr.open_zarr(out).attrs["tilerun"]["chunks_resumed"] == 0
    # again, interrupted and resumed with the same options
    shutil.rmtree(out)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and not (partial.exists() and len(_done_files(partial)) >= 24):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(_done_files(partial))
    done = np.asarray(zarr.open_array(partial / DONE, mode="r")[:]) > 0
    logits_files = {p: p.stat().st_mtime_ns for p in (partial / "logits" / "c").rglob("*")
                    if p.is_file()}
    resumed = CliRunner().invoke(main, ["predict", str(scene), "-o", str(out), "--model",
                                        str(package), *ARGS, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    attrs = xr.open_zarr(out).attrs["tilerun"]
    assert attrs["chunks_resumed"] == before and attrs["chunks"] == 64 - before
    # Finished chunks' tiles are not run again: what they sent to unfinished neighbours was
    # kept with them. At most the unfinished share of the tiles runs, plus one row of tiles
    # (chunks finish out of row-major order, so a boundary row may have to be recomputed).
    grid = make_grid(512, 512, 64, 0.25)
    total, per_row = attrs["tiles_minimum"], grid.cols
    assert attrs["tiles_run"] <= (64 - before) / 64 * total + per_row, (attrs, before)
    plan = ChunkPlan(grid, Blend(), 64)
    own = sum(len(plan.owned_tiles(i, j)) for i, j in plan.chunks() if not done[i, j])
    assert attrs["tiles_run"] == own  # exactly the unfinished chunks' own tiles
    assert not (out / "tilerun.carry").exists()  # needed only while unfinished
    np.testing.assert_allclose(xr.open_zarr(out).logits.values,
                               xr.open_zarr(reference).logits.values, atol=1e-6)
    for p, mtime in logits_files.items():  # finished chunks were not written again
        moved = out / p.relative_to(partial)
        assert moved.stat().st_mtime_ns == mtime
    assert "complete (64 chunks)" in CliRunner().invoke(main, ["info", str(out)]).output


def test_a_second_writer_is_refused_and_a_stale_lock_is_taken_over(tmp_path, identity, image):
    out = tmp_path / "o.zarr"
    partial = tmp_path / "o.zarr.partial"
    partial.mkdir()
    (partial / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    live = RunLock(partial)
    live.acquire(out)  # this process: alive
    try:
        with pytest.raises(OutputError, match="another run is writing it"):
            tilerun.predict(image, identity, out, tile=32)
    finally:
        live.release()
    stale = {"pid": 999999999, "host": socket.gethostname()}
    (partial / "tilerun.lock").write_text(json.dumps(stale))
    ds = tilerun.predict(image, identity, out, tile=32)  # the dead run's lock is stale
    assert ds.attrs["tilerun"]["complete"] is True
    assert not (out / "tilerun.lock").exists()


@pytest.mark.parametrize("with_nodata", [False, True])
def test_a_carry_round_trip_keeps_sums_and_validity(with_nodata):
    from tilerun.engine.partial import Partial, carry_from, partial_from_carry
    from tilerun.geometry import Window

    rng = np.random.default_rng(3)
    window = Window(64, 128, 20, 30)
    valid = rng.random((20, 30)) > 0.3 if with_nodata else None
    piece = Partial(window, rng.random((3, 20, 30)).astype(np.float32),
                    rng.random((20, 30)).astype(np.float32), valid)
    kept = carry_from(piece)
    assert kept.shape[0] == (4 if with_nodata else 3)  # den is not kept: it is geometry
    back = partial_from_carry(window, kept, piece.den, classes=3)
    np.testing.assert_array_equal(back.num, piece.num)
    if with_nodata:
        np.testing.assert_array_equal(back.valid, valid)
    else:
        assert back.valid is None
