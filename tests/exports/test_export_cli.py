"""``tilerun export`` on the command line: success lines, refusals, nothing partial left."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from export_fixtures import blobs, write_array_output, write_output

from tilerun.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_output(tmp_path_factory.mktemp("cli"), blobs(64, 64, seed=2), chunk=32)


def run(*args):
    return CliRunner().invoke(main, ["export", *map(str, args)])


def refused(result, subject, problem):
    """Exit 2 with exactly one line ``error: <subject>: ...problem...``."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {subject}"), lines[0]
    assert problem in lines[0], lines[0]


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tilerun-" in p.name)


def test_writes_cog_and_vectors_and_says_what(store, tmp_path):
    result = run(store, tmp_path / "labels.tif", "--blocksize", "16")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {tmp_path / 'labels.tif'} (Cloud-Optimized GeoTIFF")
    result = run(store, tmp_path / "regions.fgb")
    assert result.exit_code == 0, result.output
    assert "FlatGeobuf" in result.output and "EPSG:32633" in result.output
    assert leftovers(tmp_path) == []


def test_existing_file_is_kept_unless_overwrite(store, tmp_path):
    target = tmp_path / "labels.tif"
    target.write_bytes(b"precious")
    refused(run(store, target), target, "already exists; pass --overwrite")
    assert target.read_bytes() == b"precious"
    result = run(store, target, "--overwrite")
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:2] in (b"II", b"MM")  # a TIFF now
    assert leftovers(tmp_path) == []


def test_unfinished_stores_are_refused(store, tmp_path):
    staged = tmp_path / "scene.zarr.partial"
    shutil.copytree(store, staged)
    refused(run(tmp_path / "scene.zarr", tmp_path / "a.tif"), tmp_path / "scene.zarr",
            "unfinished")
    refused(run(staged, tmp_path / "a.tif"), staged, "unfinished")
    incomplete = tmp_path / "incomplete.zarr"
    shutil.copytree(store, incomplete)
    group = zarr.open_group(incomplete, mode="r+")
    group.attrs["tilerun"] = {**group.attrs["tilerun"], "complete": False}
    refused(run(incomplete, tmp_path / "a.gpkg"), incomplete, "unfinished")
    assert not (tmp_path / "a.tif").exists() and not (tmp_path / "a.gpkg").exists()


def test_bad_inputs_and_targets_are_one_line_errors(store, tmp_path):
    refused(run(tmp_path / "none.zarr", tmp_path / "a.tif"), tmp_path / "none.zarr",
            "no tilerun output")
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(foreign, mode="w")
    refused(run(foreign, tmp_path / "a.tif"), foreign, "not one tilerun wrote")
    refused(run(store, tmp_path / "a.shp"), tmp_path / "a.shp", "export format")
    refused(run(store, tmp_path / "a.gpkg", "--variable", "logits"), "--variable",
            "polygonise labels")
    refused(run(store, tmp_path / "missing" / "a.tif"), tmp_path / "missing" / "a.tif",
            "does not exist")
    (tmp_path / "folder.tif").mkdir()
    refused(run(store, tmp_path / "folder.tif", "--overwrite"), tmp_path / "folder.tif",
            "is a folder")
    refused(run(store, tmp_path / "p.tif", "--variable", "probabilities"), store,
            "has no probabilities")
    result = run(store, tmp_path / "a.tif", "--variable", "nonsense")
    assert result.exit_code == 2 and result.output.startswith("error:")
    assert leftovers(tmp_path) == []


def test_geojson_without_crs_is_refused_but_gpkg_works(tmp_path):
    store = write_array_output(tmp_path, np.zeros((40, 40), np.uint8))
    refused(run(store, tmp_path / "a.geojson"), tmp_path / "a.geojson", "no CRS")
    result = run(store, tmp_path / "a.gpkg")
    assert result.exit_code == 0 and "output pixels, no CRS" in result.output


def test_a_failure_mid_export_leaves_nothing(store, tmp_path, monkeypatch):

    def broken(*args, **kwargs):
        yield from ()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tilerun.exports.polygons.regions", broken)
    refused(run(store, tmp_path / "a.gpkg"), tmp_path / "a.gpkg", "No space left on device")
    assert list(tmp_path.iterdir()) == []
