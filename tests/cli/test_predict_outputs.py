"""``tilerun predict --write``: any combination of logits, labels and probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from tilerun.cli import main

try:
    from tests.conftest import scene_and_package
except ImportError:
    from conftest import scene_and_package  # type: ignore[no-redef]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return scene_and_package(tmp_path_factory.mktemp("cli-outputs"))


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("probabilities", {"probabilities"}),
        ("labels,probabilities", {"labels", "probabilities"}),
        ("logits, probabilities", {"logits", "probabilities"}),
    ],
)
def test_predict_writes_probabilities(files, tmp_path, output, expected):
    out = tmp_path / "out.zarr"
    result = CliRunner().invoke(main, [
        "predict", str(files["scene"]), "-o", str(out), "--model", str(files["package"]),
        "--tile", "32", "--chunk", "64", "--write", output, "--quiet",
    ])  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    assert set(zarr.open_group(out, mode="r").array_keys()) - {"x", "y", "class",
                                                               "spatial_ref"} == expected
    ds = xr.open_zarr(out, decode_coords="all")
    p = ds.probabilities.values
    assert p.shape == (2, 96, 96)
    assert np.isfinite(p).all() and p.min() >= 0 and p.max() <= 1
    assert np.abs(p.sum(axis=0) - 1).max() <= 2 / 508 + 1e-6
    assert ds.probabilities.rio.crs is not None  # georeferenced like the other variables


def test_help_lists_probabilities():
    result = CliRunner().invoke(main, ["predict", "--help"])
    assert result.exit_code == 0
    assert "probabilities" in result.output
