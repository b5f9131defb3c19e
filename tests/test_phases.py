"""Where a run's time goes: phases that add up to the wall time, named as they start."""

from __future__ import annotations

import re
import time

import numpy as np
from click.testing import CliRunner
from conftest import scene_and_package

import tilerun
from tilerun.cli import main
from tilerun.phases import breakdown_text, clock, note, phase


def test_phases_add_up_to_the_wall_time_and_are_announced():
    seen: list[tuple[str, str]] = []
    with clock(lambda name, label: seen.append((name, label))) as recorder:
        with phase("opening"):
            time.sleep(0.02)
        time.sleep(0.01)  # between phases: "other"
        with phase("backend"):
            note("backend", "cached choice: onnxruntime")
            time.sleep(0.02)
        with phase("opening"):  # entered again: adds up
            time.sleep(0.02)
        parts = recorder.breakdown()
        wall = recorder.wall()
    assert list(parts) == ["opening", "backend", "other"]
    assert parts["opening"] >= 0.04 and parts["other"] >= 0.01
    assert abs(sum(parts.values()) - wall) < 0.005
    assert seen == [("opening", "opening the input and output"),
                    ("backend", "choosing the backend"),
                    ("backend", "choosing the backend (cached choice: onnxruntime)"),
                    ("opening", "opening the input and output")]
    assert recorder.notes == {"backend": "cached choice: onnxruntime"}
    with phase("work"):  # outside a clock: nothing recorded, nothing raised
        pass


def test_breakdown_text_leaves_out_what_took_no_time():
    text = breakdown_text({"opening": 0.01, "model": 0.31, "work": 0.0, "other": 0.2},
                          {"model": "eager"})
    assert text == "model 0.3 (eager), work 0.0, other 0.2"


def test_a_run_reports_its_phases_in_order_adding_up(tmp_path, small_unet):
    image = np.random.default_rng(0).normal(size=(3, 96, 96)).astype(np.float32)
    labels: list[str] = []
    summary = tilerun.run(image, small_unet, tmp_path / "o.zarr",
                          tilerun.PredictOptions(tile=32, chunk=64, backend="torch"),
                          on_phase=lambda name, label: labels.append(name))
    assert list(summary.phases) == ["opening", "model", "backend", "planning", "work",
                                    "finishing", "other"]
    assert abs(sum(summary.phases.values()) - summary.wall_seconds) < 1e-9
    assert summary.wall_seconds >= summary.seconds  # the work alone, as before
    assert abs(summary.phases["work"] - summary.seconds) < 0.05
    assert summary.phase_notes["backend"] == "torch, asked for"
    assert labels[0] == "opening" and "work" in labels and labels[-1] == "finishing"


def test_the_summary_line_adds_up_to_its_total(tmp_path):
    files = scene_and_package(tmp_path)
    result = CliRunner().invoke(main, ["predict", str(files["scene"]), "-o",
                                       str(tmp_path / "o.zarr"), "--model",
                                       str(files["package"]), "--backend", "torch", "--quiet"])
    assert result.exit_code == 0, (result.output, result.exception)
    found = re.search(r", ([\d.]+) s \((.*)\), [\d.]+ Mpx/s", result.stdout)
    assert found, result.stdout
    total = float(found[1])
    # start-up (tiny inside a test process) and other phases under 0.05 s are left out
    parts = [float(v) for v in re.findall(r"(?:^|, )[a-z-]+ ([\d.]+)", found[2])]
    assert "work" in found[2] and "start-up" not in found[2], found[2]  # invoked, not a process
    assert abs(sum(parts) - total) <= 0.05 * (len(parts) + 1) + 0.1, (parts, total)
