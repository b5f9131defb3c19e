"""``tilerun predict IN1 IN2 … -o OUTDIR``: one line per failure, exit codes, kill -9 + resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from click.testing import CliRunner

from tilerun.cli import main
from tilerun.models import build_unet, save_package
from tilerun.sample import write_scene
from tilerun.sinks.job_summary import JOB_FILE
from tilerun.sinks.layout.store import DONE

ARGS = ["--tile", "32", "--chunk", "64", "--backend", "torch", "--tissue", "none"]


@pytest.fixture
def study(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "scenes"
    folder.mkdir()
    for n in range(3):
        write_scene(folder / f"s{n}.tif", 96, 80 + 16 * n, seed=n)
    (folder / "corrupt.tif").write_bytes(b"II*\x00 truncated")
    package = tmp_path / "pkg.safetensors"
    torch.manual_seed(0)
    save_package(build_unet("unet", in_channels=3, classes=2, base=4, depth=2), package,
                 mean=(127.5,) * 3, std=(64.0,) * 3)
    return {"folder": folder, "package": package}


def _predict(*args: str) -> object:
    return CliRunner().invoke(main, ["predict", *args])


def test_a_job_reports_each_failure_on_one_line_and_exits_2(tmp_path, study):
    out = tmp_path / "out"
    missing = tmp_path / "missing.tif"
    result = _predict(str(study["folder"]), str(missing), "-o", str(out), "--model",
                      str(study["package"]), *ARGS)
    assert result.exit_code == 2, result.output
    errors = result.stderr.strip().splitlines()
    errors = [line for line in errors if line.startswith("error:")]
    assert len(errors) == 2
    assert any("corrupt.tif" in line for line in errors)
    assert any(f"{missing}: no such file" in line for line in errors)
    assert "Traceback" not in result.stderr
    for n in range(3):
        assert f"done {study['folder'] / f's{n}.tif'} → {out / f's{n}.zarr'}" in result.stdout
        assert (out / f"s{n}.zarr").is_dir()
    assert "job: 3 done, 0 skipped, 2 failed of 5 inputs" in result.stdout
    record = json.loads((out / JOB_FILE).read_text())
    assert [s["status"] for s in record["scenes"]] == ["failed", "done", "done", "done", "failed"]
    # --quiet: one line per scene and the totals, no table.
    quiet = _predict(str(study["folder"] / "s0.tif"), str(study["folder"] / "s1.tif"), "-o",
                     str(tmp_path / "q"), "--model", str(study["package"]), *ARGS, "--quiet")
    assert quiet.exit_code == 0, quiet.output
    assert len(quiet.stdout.strip().splitlines()) == 3


def test_one_plain_input_runs_as_before(tmp_path, study):
    scene = study["folder"] / "s0.tif"
    result = _predict(str(scene), "--model", str(study["package"]), *ARGS)
    assert result.exit_code == 0, result.output
    assert scene.with_suffix(".zarr").is_dir()  # the default output, beside the input
    assert not (study["folder"] / JOB_FILE).exists()
    assert result.stdout.startswith("done ") and "tiles" in result.stdout


def test_a_job_needs_an_output_folder(study):
    result = _predict(str(study["folder"]), "--model", str(study["package"]), *ARGS)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip()] and "-o OUTDIR" in result.stderr


def _done_chunks(partial: Path) -> int:
    return sum(1 for p in (partial / DONE / "c").rglob("*") if p.is_file())


def _three_scenes_and_a_model(tmp_path: Path) -> tuple[Path, Path]:
    """A folder of three 320² scenes and a seeded 3-class package (slow enough to interrupt)."""
    folder = tmp_path / "scenes"
    folder.mkdir()
    for n in range(3):
        write_scene(folder / f"s{n}.tif", 320, 320, seed=n)
    package = tmp_path / "m.safetensors"
    torch.manual_seed(0)
    save_package(build_unet("unet", in_channels=3, classes=3, base=16, depth=2), package,
                 mean=(120,) * 3, std=(60,) * 3)
    return folder, package


def test_kill_minus_9_mid_job_then_resume_loses_nothing(tmp_path):
    folder, package = _three_scenes_and_a_model(tmp_path)
    args = ["--model", str(package), "--tile", "64", "--chunk", "64", "--threads", "1",
            "--backend", "torch", "--tissue", "none", "--quiet"]
    reference = _predict(str(folder), "-o", str(tmp_path / "ref"), *args)
    assert reference.exit_code == 0, reference.output
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tilerun", "predict", str(folder), "-o", str(out), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    partial = out / "s1.zarr.partial"
    while time.time() < deadline and proc.poll() is None:
        if (out / "s0.zarr").is_dir() and partial.exists() and _done_chunks(partial) >= 5:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = _done_chunks(partial)
    assert 0 < kept < 25, "killed mid-scene: some of s1's 25 chunks written"
    assert not (out / "s1.zarr").exists() and not (out / "s2.zarr").exists()
    record = json.loads((out / JOB_FILE).read_text())
    assert record["scenes"][0]["status"] == "done" and not record["finished"]

    resumed = _predict(str(folder), "-o", str(out), *args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    scenes = json.loads((out / JOB_FILE).read_text())["scenes"]
    assert [s["status"] for s in scenes] == ["skipped", "done", "done"]
    assert scenes[1]["chunks_resumed"] >= kept
    for n in range(3):
        np.testing.assert_allclose(xr.open_zarr(out / f"s{n}.zarr").logits.values,
                                   xr.open_zarr(tmp_path / "ref" / f"s{n}.zarr").logits.values,
                                   rtol=0, atol=1e-5)


def test_on_a_terminal_one_bar_for_the_job_and_one_for_the_scene(tmp_path, study, capsys):
    import io

    from rich.console import Console

    from tilerun.cli.job import run_job
    from tilerun.engine.options import PredictOptions

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=140)
    inputs = [str(study["folder"] / f"s{n}.tif") for n in range(3)]
    options = PredictOptions(tile=32, chunk=64, backend="torch", tissue="none")
    run_job(inputs, str(tmp_path / "out"), study["package"], options, console, quiet=False,
            as_json=False)
    drawn = screen.getvalue()
    assert "scenes" in drawn and "chunks" in drawn and "Mpx/s" in drawn
    assert "s2.tif" in drawn  # the current scene's bar names it
    printed = capsys.readouterr().out
    assert sum(line.startswith("done ") for line in printed.splitlines()) == 3
    assert "job: 3 done" in printed


def test_ctrl_c_mid_job_keeps_the_record_and_exits_130(tmp_path):
    folder, package = _three_scenes_and_a_model(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tilerun", "predict", str(folder), "-o", str(out), "--model",
           str(package), "--tile", "64", "--chunk", "64", "--threads", "1", "--backend",
           "torch", "--tissue", "none", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and not (out / "s0.zarr").is_dir():
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "aborted" in stderr and "--resume" in stderr and "Traceback" not in stderr
    record = json.loads((out / JOB_FILE).read_text())
    statuses = [s["status"] for s in record["scenes"]]
    assert statuses[0] == "done" and set(statuses[1:]) <= {"interrupted", "pending", "done"}
    assert "interrupted" in statuses or "pending" in statuses
    for scene in record["scenes"]:
        if scene["status"] != "done":
            assert not Path(scene["output"]).exists()  # nothing unfinished looks complete
