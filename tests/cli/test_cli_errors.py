"""The ``tilerun`` command: every refusal exits 2 with one ``error:`` line and writes nothing.

Most cases run through click's CliRunner (in process, fast); one runs the installed console
script in a subprocess to check the real process's exit code and stderr.
"""

# ruff: noqa: F811  (the shared fixtures are imported by name, then taken as arguments)
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from rasterio.crs import CRS

try:  # `python -m pytest` puts the checkout on sys.path; plain `pytest` puts tests/ there
    from tests.conftest import shared_file
except ImportError:  # pragma: no cover
    from conftest import shared_file  # type: ignore[no-redef]

from errors_fixtures import (  # noqa: F401  (fixtures and helpers shared with other modules)
    TRANSFORM,
    assert_clean_error,
    assert_no_output,
    files,
    invoke,
    predict,
    snapshot,
)

# -- bad inputs ----------------------------------------------------------------------------------


def test_missing_input(files, tmp_path):
    source, out = tmp_path / "missing.tif", tmp_path / "out.zarr"
    assert_clean_error(predict(files, source, out), source)
    assert_no_output(out)


def test_text_file_named_tif(files, tmp_path):
    out = tmp_path / "out.zarr"
    assert_clean_error(predict(files, files["text"], out), files["text"])
    assert_no_output(out)


def test_directory_as_input(files, tmp_path):
    source = tmp_path / "folder.tif"
    source.mkdir()
    out = tmp_path / "out.zarr"
    assert_clean_error(predict(files, source, out), source)
    assert_no_output(out)


def test_unopenable_tiff(files, tmp_path):
    """GDAL has no codec for its compression (52479): refused like any unreadable raster."""
    source = shared_file("wsi/openslide-python/unopenable.tiff")
    out = tmp_path / "out.zarr"
    line = assert_clean_error(predict(files, source, out), source)
    assert "52479" in line  # GDAL's reason is passed on
    assert_no_output(out)


def test_band_count_the_model_cannot_take(files, tmp_path):
    out = tmp_path / "out.zarr"
    line = assert_clean_error(
        predict(files, files["scene"], out, "--bands", "1,2"), files["scene"], "--bands"
    )
    assert "3" in line and "2" in line
    assert_no_output(out)


@pytest.mark.parametrize("bands", ["1,2,4", "0,1,2", "3,2,-1"])
def test_bands_out_of_range(files, tmp_path, bands):
    out = tmp_path / "out.zarr"
    assert_clean_error(
        predict(files, files["scene"], out, "--bands", bands), files["scene"], "--bands"
    )
    assert_no_output(out)


def test_bands_not_integers(files, tmp_path):
    out = tmp_path / "out.zarr"
    assert_clean_error(predict(files, files["scene"], out, "--bands", "red,green"), "--bands")
    assert_no_output(out)


def test_unsupported_dtype_complex(files, tmp_path):
    out = tmp_path / "out.zarr"
    line = assert_clean_error(predict(files, files["complex"], out), files["complex"])
    assert "complex64" in line
    assert_no_output(out)


def test_unsupported_dtype_complex_int16(files, tmp_path):
    out = tmp_path / "out.zarr"
    assert_clean_error(predict(files, files["cint16"], out), files["cint16"])
    assert_no_output(out)


def test_missing_model_file(files, tmp_path):
    model, out = tmp_path / "nope.safetensors", tmp_path / "out.zarr"
    result = invoke("predict", files["scene"], "-o", out, "--model", model, "--quiet")
    assert_clean_error(result, model)
    assert_no_output(out)


# -- bad options ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tile", ["30", "0", "-8", "2"])
def test_bad_tile(files, tmp_path, tile):
    out = tmp_path / "out.zarr"
    result = invoke(
        "predict", files["scene"], "-o", out, "--model", files["package"], "--tile", tile, "--quiet"
    )
    assert_clean_error(result, "--tile")
    assert_no_output(out)


@pytest.mark.parametrize("overlap", ["abc", "1.5", "-0.1", "1.0", "32", "-4"])
def test_bad_overlap(files, tmp_path, overlap):
    out = tmp_path / "out.zarr"
    assert_clean_error(predict(files, files["scene"], out, "--overlap", overlap), "--overlap")
    assert_no_output(out)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--chunk", "0"),
        ("--batch-size", "0"),
        ("--workers", "0"),
        ("--output", "probs"),
        ("--output", "labels,probability"),
        ("--device", "tpu"),
    ],
)
def test_other_bad_values(files, tmp_path, option, value):
    out = tmp_path / "out.zarr"
    assert_clean_error(predict(files, files["scene"], out, option, value), option)
    assert_no_output(out)


@pytest.mark.parametrize(
    ("option", "value"), [("--blend", "foo"), ("--tile", "abc"), ("--dtype", "float64")]
)
def test_values_click_rejects(files, tmp_path, option, value):
    out = tmp_path / "out.zarr"
    result = predict(files, files["scene"], out, option, value)
    assert_no_output(out)
    assert_clean_error(result, option)


def test_error_without_quiet_is_one_line(files, tmp_path):
    source, out = tmp_path / "missing.tif", tmp_path / "out.zarr"
    assert_clean_error(predict(files, source, out, quiet=False), source)


@pytest.fixture
def existing_store(files, tmp_path) -> Path:
    out = tmp_path / "existing.zarr"
    result = predict(files, files["scene"], out)
    assert result.exit_code == 0, result.output
    return out


def test_existing_output_without_overwrite_is_untouched(files, existing_store):
    before = snapshot(existing_store)
    assert len(before) > 3
    result = predict(files, files["scene"], existing_store, "--tile", 64)
    assert_clean_error(result, existing_store, "--overwrite")
    assert snapshot(existing_store) == before
    assert not existing_store.with_name(existing_store.name + ".partial").exists()


def test_existing_output_refused_before_input_is_read(files, existing_store, tmp_path):
    before = snapshot(existing_store)
    result = predict(files, tmp_path / "missing.tif", existing_store)
    assert_clean_error(result, existing_store)
    assert snapshot(existing_store) == before


def test_overwrite_refuses_regular_file(files, tmp_path):
    out = tmp_path / "out.zarr"
    out.write_bytes(b"precious bytes\x00\x01")
    before = snapshot(out)
    result = predict(files, files["scene"], out, "--overwrite")
    assert_clean_error(result, out)
    assert snapshot(out) == before
    assert not out.with_name(out.name + ".partial").exists()


def test_overwrite_refuses_non_zarr_directory(files, tmp_path):
    out = tmp_path / "out.zarr"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    (out / "sub" / "data.bin").write_bytes(bytes(range(256)))
    before = snapshot(out)
    result = predict(files, files["scene"], out, "--overwrite")
    assert_clean_error(result, out)
    assert snapshot(out) == before
    assert not out.with_name(out.name + ".partial").exists()


def test_missing_parent_folder(files, tmp_path):
    out = tmp_path / "no" / "such" / "out.zarr"
    assert_clean_error(predict(files, files["scene"], out), out)
    assert not (tmp_path / "no").exists()


# -- success -------------------------------------------------------------------------------------


def test_sample_then_predict_then_overwrite(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("sample", "scene.tif", "--size", 256)
    assert result.exit_code == 0, result.output
    assert "scene.tif" in result.stdout
    with rasterio.open("scene.tif") as src:
        assert (src.count, src.height, src.width) == (3, 256, 256)
        crs, transform = src.crs, src.transform

    args = [
        "predict",
        "scene.tif",
        "-o",
        "out.zarr",
        "--model",
        files["package"],
        "--output",
        "logits,labels",
        "--tile",
        64,
        "--chunk",
        128,
    ]
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "out.zarr" in result.output
    assert "1.00×" in result.output
    assert not Path("out.zarr.partial").exists()
    ds = xr.open_zarr("out.zarr", decode_coords="all")
    assert ds.attrs["tilerun"]["complete"] is True
    assert ds.attrs["tilerun"]["tile"] == 64
    assert ds.logits.shape == (2, 256, 256) and ds.labels.shape == (256, 256)
    assert ds.chunks["y"][0] == 128
    assert ds.rio.crs == crs == CRS.from_epsg(32633)
    assert ds.rio.transform().almost_equals(transform, precision=1e-9)
    assert np.isfinite(ds.logits.values).all()
    ds.close()

    # without --overwrite the second run is refused, with it the store is replaced
    assert invoke(*args, "--tile", 32).exit_code == 2
    assert xr.open_zarr("out.zarr").attrs["tilerun"]["tile"] == 64
    result = invoke(*args, "--tile", 32, "--overwrite")
    assert result.exit_code == 0, (result.output, result.exception)
    replaced = xr.open_zarr("out.zarr", decode_coords="all")
    assert replaced.attrs["tilerun"]["tile"] == 32
    assert replaced.attrs["tilerun"]["complete"] is True
    assert replaced.logits.shape == (2, 256, 256)
    assert sorted(os.listdir(".")) == ["out.zarr", "scene.tif"]  # no .partial, no .replaced


def test_sample_refuses_existing_file(tmp_path):
    target = tmp_path / "scene.tif"
    target.write_text("mine")
    result = invoke("sample", target, "--size", 32)
    assert_clean_error(result, target, "--overwrite")
    assert target.read_text() == "mine"


# -- the real console script ---------------------------------------------------------------------


def test_console_script_error_is_one_line(tmp_path, files):
    script = Path(sys.executable).with_name("tilerun")
    if not script.is_file():
        pytest.skip(f"console script {script} not installed")
    source, out = tmp_path / "missing.tif", tmp_path / "out.zarr"
    proc = subprocess.run(
        [
            str(script),
            "predict",
            str(source),
            "-o",
            str(out),
            "--model",
            str(files["package"]),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"error: {source}: no such file"]
    assert_no_output(out)


def test_the_old_variables_option_works_with_a_note_and_a_path_there_says_where_it_goes(
        files, tmp_path):
    out = tmp_path / "out.zarr"
    old = predict(files, files["scene"], out, "--output", "labels")
    assert old.exit_code == 0, (old.output, old.exception)
    assert "warning: --output (the variables to write) is now --write" in old.stderr
    assert set(xr.open_zarr(out).data_vars) == {"labels"}
    wrong = tmp_path / "other.zarr"
    line = assert_clean_error(predict(files, files["scene"], wrong, "--output", "x.zarr"),
                              "--output")
    assert "-o/--output-path x.zarr" in line and "--write" in line, line
    assert_no_output(wrong)
