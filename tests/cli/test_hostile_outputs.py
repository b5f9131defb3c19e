"""Hostile outputs, each through the CLI: one ``error:`` line, exit 2, nothing that looks
complete left behind, and nothing of the user's lost (the output side of the corpus; the
inputs are in ``test_hostile_inputs.py``)."""

from __future__ import annotations

import errno
import signal
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
from tilerun.cli import main
from tilerun.sinks import completed_output
from tilerun.sinks import local as local_sink
from tilerun.sinks.layout.store import DONE
from tilerun.sinks.lease import RunLock

try:
    from tests.conftest import predict_cli, scene_and_package
except ImportError:
    from conftest import predict_cli, scene_and_package  # type: ignore[no-redef]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return scene_and_package(tmp_path_factory.mktemp("hostile-outputs"))


def _predict(files: dict[str, Path], out: Path, *extra: str):
    return predict_cli(files, out, "--backend", "torch", *extra)


def _one_error_line(result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_an_output_under_proc_is_refused_before_any_work(files):
    _one_error_line(_predict(files, Path("/proc/out.zarr")),
                    "/proc/out.zarr", "cannot write in /proc")


def test_an_output_whose_parent_is_a_file_is_refused(files, tmp_path):
    parent = tmp_path / "file.txt"
    parent.write_text("not a folder")
    _one_error_line(_predict(files, parent / "out.zarr"), "is a file, not a folder")
    assert parent.read_text() == "not a folder"


def test_an_output_in_an_unwritable_folder_is_refused(files, tmp_path, monkeypatch):
    # Tests run as root here, whom permissions do not stop: make the probe fail as it would.
    def denied(*args: object, **kwargs: object) -> str:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(local_sink.tempfile, "mkdtemp", denied)
    out = tmp_path / "out.zarr"
    _one_error_line(_predict(files, out), str(out), "Permission denied")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_keeps_the_old_output_and_the_new_one_resumes(files, tmp_path, monkeypatch):
    out = tmp_path / "out.zarr"
    assert _predict(files, out).exit_code == 0
    before = xr.open_zarr(out).logits.values
    stamp = (out / "zarr.json").stat().st_mtime_ns
    real_write = local_sink.ZarrSink.write
    calls = []

    def filling(self, window, outputs):
        calls.append(window)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, window, outputs)

    with monkeypatch.context() as patched:
        patched.setattr(local_sink.ZarrSink, "write", filling)
        line = _one_error_line(_predict(files, out, "--overwrite"), str(out),
                               "No space left on device while writing", "--resume")
    assert "Traceback" not in line
    assert (out / "zarr.json").stat().st_mtime_ns == stamp  # the old output is untouched
    np.testing.assert_array_equal(xr.open_zarr(out).logits.values, before)
    partial = out.with_name(out.name + ".partial")
    assert partial.is_dir() and RunLock(partial).holder() is None
    resumed = _predict(files, out, "--overwrite", "--resume")
    assert resumed.exit_code == 0, (resumed.output, resumed.exception)
    np.testing.assert_allclose(xr.open_zarr(out).logits.values, before, atol=1e-6)
    assert not partial.exists()


def test_two_runs_started_at_once_on_one_output(files, tmp_path):
    out = tmp_path / "out.zarr"
    command = [sys.executable, "-m", "tilerun", "predict", str(files["scene"]), "-o", str(out),
               "--model", str(files["package"]), "--tile", "32", "--chunk", "32",
               "--backend", "torch", "--scheduler", "sync"]
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]  # type: ignore[union-attr]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    lines = [line for line in loser.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {out}"), loser
    assert any(s in lines[0] for s in ("another run", "already exists")), loser
    assert completed_output(out) is not None


def test_info_on_a_store_tilerun_did_not_write(tmp_path):
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(str(foreign), mode="w").create_array("a", shape=(4,), dtype="float32")
    result = CliRunner().invoke(main, ["info", str(foreign)])
    _one_error_line(result, str(foreign), "not one tilerun wrote")


def test_info_on_a_store_with_corrupt_metadata(tmp_path):
    broken = tmp_path / "broken.zarr"
    zarr.open_group(str(broken), mode="w")
    (broken / "zarr.json").write_text("{not json")
    _one_error_line(CliRunner().invoke(main, ["info", str(broken)]), str(broken),
                    "Zarr metadata cannot be read")


def test_resume_on_a_complete_output_does_nothing_and_says_so(files, tmp_path):
    out = tmp_path / "out.zarr"
    assert _predict(files, out).exit_code == 0
    stamp = (out / "zarr.json").stat().st_mtime_ns
    result = _predict(files, out, "--resume")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "already complete" in result.output and "nothing to do" in result.output
    assert (out / "zarr.json").stat().st_mtime_ns == stamp


def test_a_failing_pyramid_step_releases_the_lock(files, tmp_path, monkeypatch):
    from tilerun.sinks.pyramids import ngff

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(ngff, "write_label_pyramid", broken)
    out = tmp_path / "out.zarr"
    options = tilerun.PredictOptions(tile=32, chunk=64, pyramid="labels", backend="torch")
    with pytest.raises(OSError, match="Input/output error"):
        tilerun.run(files["scene"], files["package"], out, options)
    partial = out.with_name(out.name + ".partial")
    assert RunLock(partial).holder() is None and not (partial / "tilerun.lock").exists()
    assert completed_output(out) is None
    monkeypatch.undo()
    tilerun.run(files["scene"], files["package"], out,
                tilerun.PredictOptions(tile=32, chunk=64, pyramid="labels", backend="torch",
                                       resume=True))
    assert completed_output(out) is not None


def _chunks_written(partial: Path) -> int:
    folder = partial / DONE / "c"
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def test_ctrl_c_on_a_cluster_run_says_how_to_resume_without_tracebacks(tmp_path):
    scene, package = tmp_path / "scene.tif", tmp_path / "pkg.safetensors"
    from tilerun.models import build_unet, save_package
    from tilerun.sample import write_scene

    write_scene(scene, 512, 512, seed=2)

    save_package(build_unet("unet", in_channels=3, classes=2, base=8, depth=2), package,
                 mean=(127.5,) * 3, std=(64.0,) * 3)
    out = tmp_path / "out.zarr"
    command = [sys.executable, "-m", "tilerun", "predict", str(scene), "-o", str(out),
               "--model", str(package), "--tile", "64", "--chunk", "64", "--workers", "2",
               "--backend", "torch"]
    run = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           text=True)
    partial = out.with_name(out.name + ".partial")
    deadline = time.time() + 120
    while time.time() < deadline and run.poll() is None and _chunks_written(partial) < 1:
        time.sleep(0.1)
    if run.poll() is not None:
        pytest.skip("the run finished before it could be interrupted")
    run.send_signal(signal.SIGINT)
    code = run.wait(timeout=120)
    err = run.stderr.read()  # type: ignore[union-attr]
    assert code == 130, err
    assert "Traceback" not in err and "WARNING" not in err, err
    assert err.strip().splitlines()[-1] == (f"aborted: {out}.partial keeps the chunks written so "
                                           "far; run the same command with --resume to continue")
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert completed_output(out) is not None


class Shrinking(torch.nn.Module):
    """Returns logits half the tile's size: found by the probe, before any output exists."""

    downsampling = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :2, ::2, ::2]


def test_a_model_with_the_wrong_output_size_leaves_no_output(tmp_path, image):
    out = tmp_path / "out.zarr"
    with pytest.raises(tilerun.errors.ModelError, match=r"maps 48² tiles to shape .* not"):
        tilerun.run(image, Shrinking(), out, tilerun.PredictOptions(tile=48, backend="torch"))
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_names_where_the_chunks_are_also_for_an_overwrite_in_object_storage(tmp_path):
    """An ``--overwrite`` in object storage writes the new store beside the old one (no rename
    there): the line after Ctrl-C must name that ``.partial`` store, not the old output."""
    from tilerun.cli.predict import _unfinished

    url = f"file://{tmp_path}/out.zarr"
    assert _unfinished(tmp_path / "out.zarr", overwrite=False) == f"{tmp_path}/out.zarr.partial"
    assert _unfinished(url, overwrite=True) == url  # nothing written beside it yet
    (tmp_path / "out.zarr.partial").mkdir(exist_ok=True)
    (tmp_path / "out.zarr.partial" / "zarr.json").write_text('{"zarr_format": 3}')
    assert _unfinished(url, overwrite=True) == url + ".partial"
    assert _unfinished(url, overwrite=False) == url  # a plain run writes the output in place
