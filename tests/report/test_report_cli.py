"""``tilerun report``: the stored report printed as tables and written as one HTML page with
its plots; a drifted input is one warning line in ``tilerun predict``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from tilerun.cli import main

try:
    from tests.conftest import predict_cli, scene_and_package
except ImportError:
    from conftest import predict_cli, scene_and_package  # type: ignore[no-redef]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return scene_and_package(tmp_path_factory.mktemp("cli-report"))


@pytest.fixture(scope="module")
def output(files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report-out") / "scene.zarr"
    result = predict_cli(files, out, "--write", "logits,labels", "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_report_prints_and_writes_one_html_page(output):
    result = CliRunner().invoke(main, ["report", str(output)])
    assert result.exit_code == 0, result.output
    for text in ("input bands", "band 1", "output (softmax)", "latency p50 / p99", "model busy"):
        assert text in result.stdout
    page = output.with_name("scene.report.html")
    assert f"wrote {page}" in result.stdout
    html = page.read_text()
    assert html.count('src="data:image/png;base64,') == 2  # quicklook and entropy map
    assert html.count("<svg") == 3 + 2  # a histogram per band, class fractions, entropy
    assert "training normal" in html and "class fractions" in html


def test_report_never_overwrites_without_overwrite(output, tmp_path):
    page = tmp_path / "page.html"
    page.write_text("mine")
    result = CliRunner().invoke(main, ["report", str(output), "--html", str(page)])
    assert result.exit_code == 2
    assert result.output == f"error: {page}: already exists; pass --overwrite to replace it\n"
    assert page.read_text() == "mine"
    result = CliRunner().invoke(main, ["report", str(output), "--html", str(page), "--overwrite",
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["schema"] == 1
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_report_needs_a_finished_output_with_a_report(tmp_path):
    missing = CliRunner().invoke(main, ["report", str(tmp_path / "none.zarr")])
    assert missing.exit_code == 2 and "no tilerun output here" in missing.output
    group = zarr.open_group(str(tmp_path / "old.zarr"), mode="w")
    group.attrs["tilerun"] = {"complete": True}
    old = CliRunner().invoke(main, ["report", str(tmp_path / "old.zarr"), "--no-html"])
    assert old.exit_code == 2
    assert re.fullmatch(r"error: .*old\.zarr: has no run report .*\n", old.output)


def test_predict_warns_in_one_line_when_the_input_drifted(files, tmp_path):
    import rasterio

    with rasterio.open(files["scene"]) as src:
        profile, pixels = src.profile, src.read()
    dark = tmp_path / "dark.tif"
    with rasterio.open(dark, "w", **profile) as dst:
        dst.write((pixels // 5).astype(np.uint8))  # mean ~25, the package says 127.5 ± 64
    result = predict_cli({**files, "scene": dark}, tmp_path / "dark.zarr", "--quiet")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1, result.output
    assert "input unlike the model's training data" in lines[0] and "band 1 mean" in lines[0]
