"""``tilerun predict`` on real products: a STAC item, bands by name, the scale/offset record."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
from click.testing import CliRunner

from tilerun.cli import main
from tilerun.models import build_unet, save_package

try:  # `python -m pytest` puts the checkout on sys.path; plain `pytest` puts tests/ there
    from tests.conftest import shared_file
except ImportError:  # pragma: no cover
    from conftest import shared_file  # type: ignore[no-redef]

S2_ITEM = "stac/written-here/S2A_29RKH_20200219_0_L2A_crop.item.json"


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A 3-band reflectance model that names its bands (nir, red, green: false colour)."""
    path = tmp_path / "m.safetensors"
    save_package(build_unet("unet", in_channels=3, classes=2, base=4, depth=2), path,
                 band_names=("nir", "red", "green"), mean=(0.3,) * 3, std=(0.1,) * 3,
                 dtype="float32")
    return path


def test_stac_item_runs_with_the_models_bands_and_records_the_scaling(tmp_path, package):
    out = tmp_path / "o.zarr"
    args = ["predict", str(shared_file(S2_ITEM)), "-o", str(out), "--model", str(package),
            "--tile", "64", "--chunk", "128", "--resampling", "bilinear", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    ds = xr.open_zarr(out)
    assert ds.attrs["tilerun"]["scale_offset"]["applied"] is True
    assert ds.logits.shape == (2, 320, 320)
    report = CliRunner().invoke(main, ["report", str(out), "--no-html"])
    assert "applied: × 0.0001 + 0 (STAC raster:bands)" in report.output


def test_bands_by_name_override_and_a_missing_name_lists_the_offer(tmp_path, package):
    item = str(shared_file(S2_ITEM))
    base = ["predict", item, "--model", str(package), "--tile", "64", "--quiet"]
    ok = CliRunner().invoke(main, [*base, "-o", str(tmp_path / "a.zarr"), "--bands",
                                   "B08,B04,swir16"])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(main, [*base, "-o", str(tmp_path / "b.zarr"), "--bands",
                                    "nir,red,rededge1"])
    assert bad.exit_code == 2
    lines = bad.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "has no band named 'rededge1'" in lines[-1]
    assert "it offers 1 blue, 2 green, 3 red, 4 nir, 5 nir08, 6 swir16, 7 swir22" in lines[-1]
    assert "Traceback" not in bad.output and not (tmp_path / "b.zarr").exists()


def test_dry_run_names_the_bands_and_the_scaling(tmp_path, package):
    args = ["predict", str(shared_file(S2_ITEM)), "-o", str(tmp_path / "o.zarr"), "--model",
            str(package), "--dry-run"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert ("input    3 band(s) (nir, red, green), 320 × 320 px; scale/offset applied: "
            "× 0.0001 + 0 (STAC raster:bands)") in result.output
    assert not (tmp_path / "o.zarr").exists()


def test_stack_runs_one_scenes_band_files_by_name_as_the_python_api_does(tmp_path):
    """--stack: Sentinel-2's per-band files (10 m and 20 m) are one scene; the model's band
    names pick and order them (B08 = nir, B04 = red, B03 = green, by file name)."""
    import tilerun

    package = tmp_path / "counts.safetensors"
    save_package(build_unet("unet", in_channels=3, classes=2, base=4, depth=2), package,
                 band_names=("nir", "red", "green"), mean=(3000.0,) * 3, std=(1000.0,) * 3,
                 dtype="uint16")
    files = [shared_file(f"geotiff/rio-tiler-pds/S2A_29RKH_20200219_0_L2A/{b}.tif")
             for b in ("B03", "B04", "B08", "B11")]
    out = tmp_path / "stacked.zarr"
    args = ["predict", "--stack", *map(str, files), "-o", str(out), "--model", str(package),
            "--tile", "64", "--chunk", "128", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    ds = xr.open_zarr(out)
    assert ds.attrs["tilerun"]["band_names"] == ["B08", "B04", "B03"]  # nir, red, green
    direct = tilerun.predict(files, package, tmp_path / "direct.zarr", tile=64, chunk=128)
    assert (ds.logits.values == direct.logits.values).all()
    no_out = CliRunner().invoke(main, ["predict", "--stack", *map(str, files), "--model",
                                       str(package)])
    assert no_out.exit_code == 2 and "give -o OUT.zarr" in no_out.output
