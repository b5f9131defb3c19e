"""``tilerun report OUTDIR``: a job's scenes side by side and the ones that stand out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

import tilerun
from tilerun.cli import main
from tilerun.engine.job import predict_many
from tilerun.errors import InputError
from tilerun.report.collection import OUTLIER_Z, read_collection, robust_z
from tilerun.sample import write_scene

OPTIONS = {"tile": 32, "chunk": 64, "mean": (120,) * 3, "std": (60,) * 3, "tissue": "none",
           "backend": "torch"}


def test_robust_z_is_not_fooled_by_the_outlier_itself():
    values = [10.0, 10.5, 9.8, 10.2, 10.1, 40.0]
    z = robust_z(values, floor=0.01)
    assert abs(z[-1]) > OUTLIER_Z and all(abs(v) < 2 for v in z[:-1])
    # The floor keeps near-identical scenes from being flagged for trifles.
    assert all(abs(v) < 1 for v in robust_z([10.0, 10.0, 10.0, 10.001], floor=1.0))


@pytest.fixture
def job_folder(tmp_path: Path, small_unet) -> Path:
    folder = tmp_path / "scenes"
    folder.mkdir()
    for n in range(5):
        write_scene(folder / f"s{n}.tif", 96, 96, seed=n)
    with rasterio.open(folder / "s3.tif", "r+") as dst:  # a scene unlike the others: dark
        dst.write((dst.read().astype(np.float32) * 0.2).astype(np.uint8))
    out = tmp_path / "out"
    predict_many([folder, tmp_path / "missing.tif"], small_unet, out,
                 tilerun.PredictOptions(**OPTIONS))
    return out


def test_the_scene_unlike_the_collection_is_not_to_be_trusted(job_folder):
    report = read_collection(job_folder)
    assert [Path(s.input).name for s in report.scenes] == [f"s{n}.tif" for n in range(5)] + \
        ["missing.tif"]
    untrusted = {Path(s.input).name for s in report.untrusted}
    assert "s3.tif" in untrusted
    dark = next(s for s in report.scenes if s.input.endswith("s3.tif"))
    assert any("robust σ from the collection" in c or "drifted" in c for c in dark.concerns)
    assert report.band_names == ("band 1", "band 2", "band 3")
    assert report.scenes[-1].status == "failed" and report.scenes[-1].trusted is None
    # Outliers need no training statistics: flagged as standing out, not only as drifted.
    assert any("robust σ" in c for c in dark.concerns)
    assert all(not any("robust σ" in c for c in s.concerns) for s in report.scenes
               if not s.input.endswith("s3.tif"))


def test_report_cli_shows_the_job(job_folder):
    result = CliRunner().invoke(main, ["report", str(job_folder)])
    assert result.exit_code == 0, result.output
    assert "do not trust" in result.stdout and "s3.tif" in result.stdout
    data = json.loads(CliRunner().invoke(main, ["report", str(job_folder), "--json"]).stdout)
    assert any(p.endswith("s3.tif") for p in data["untrusted"])
    assert len(data["scenes"]) == 6 and data["scenes"][0]["bands"][0]["drift"] is not None


def test_a_folder_without_a_job_record_is_one_error(tmp_path):
    with pytest.raises(InputError, match=r"holds no tilerun-job\.json"):
        read_collection(tmp_path)
