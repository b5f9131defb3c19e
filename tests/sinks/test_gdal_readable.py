"""Outputs GDAL users can open (``--zarr-format 2``), and labels that stay uint8 in xarray."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr
from click.testing import CliRunner
from conftest import interrupt_after, settle

import tilerun
from tilerun.cli import main
from tilerun.errors import OptionError
from tilerun.models import build_unet
from tilerun.sample import write_scene
from tilerun.sinks import LABEL_FILL

# One thread: the v2 and v3 runs are compared bit for bit, and with several threads the tiles a
# model batch holds (so its float rounding, ~1e-7) depend on timing.
OPTIONS = {"tile": 64, "chunk": 64, "backend": "torch", "tissue": "none",
           "mean": (120.0,) * 3, "std": (60.0,) * 3, "output": ("labels", "logits"), "threads": 1}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The same run written as Zarr v3 and v2, over a scene with a nodata corner."""
    root = tmp_path_factory.mktemp("gdal")
    scene = root / "scene.tif"
    write_scene(scene, 192, 160, seed=3)
    with rasterio.open(scene, "r+") as ds:
        data = ds.read()
        data[:, :40, :40] = 0
        ds.write(data)
        ds.nodata = 0
    model = build_unet("unet", in_channels=3, classes=3, base=4, depth=2).eval()
    for fmt in (3, 2):
        tilerun.run(scene, model, root / f"v{fmt}.zarr",
                    tilerun.PredictOptions(**OPTIONS, zarr_format=fmt))
    return root


def test_gdal_reads_the_v2_output_with_its_georeferencing(outputs):
    v3 = xr.open_zarr(outputs / "v3.zarr", decode_coords="all")
    with rasterio.open(outputs / "scene.tif") as src:
        crs, transform = src.crs, src.transform
    with rasterio.open(f'ZARR:"{outputs / "v2.zarr"}":/labels') as labels:
        assert labels.crs == crs and labels.transform.almost_equals(transform)
        assert labels.nodata == LABEL_FILL and labels.dtypes == ("uint8",)
        np.testing.assert_array_equal(labels.read(1), v3.labels.values)
        assert (labels.read(1)[:40, :40] == LABEL_FILL).all()
    with rasterio.open(f'ZARR:"{outputs / "v2.zarr"}":/logits') as logits:
        assert logits.count == v3.sizes["class"] and logits.crs == crs
        np.testing.assert_array_equal(logits.read(), v3.logits.values)


def test_labels_stay_uint8_with_nodata_255_in_xarray(outputs):
    labels = xr.open_zarr(outputs / "v3.zarr", decode_coords="all").labels
    assert labels.dtype == np.uint8 and labels.rio.nodata == LABEL_FILL
    assert (labels.values[:40, :40] == LABEL_FILL).all()
    assert set(np.unique(labels.values[40:, 40:])) <= {0, 1, 2}
    # a chunk never written reads as nodata in any Zarr reader, not as class 0
    assert zarr.open_array(outputs / "v3.zarr" / "labels", mode="r").fill_value == LABEL_FILL


def test_v2_outputs_report_and_refuse_pyramids(outputs, tmp_path):
    info = CliRunner().invoke(main, ["info", str(outputs / "v2.zarr")])
    assert info.exit_code == 0 and "complete (9 chunks)" in info.output
    with pytest.raises(OptionError, match="zarr-format 3"):
        tilerun.run(outputs / "scene.tif", build_unet("unet", in_channels=3, classes=3,
                                                      base=4, depth=2),
                    tmp_path / "p.zarr",
                    tilerun.PredictOptions(**OPTIONS, zarr_format=2, pyramid="labels"))
    assert not (tmp_path / "p.zarr").exists() and not (tmp_path / "p.zarr.partial").exists()
    with pytest.raises(OptionError, match="--zarr-format"):
        tilerun.PredictOptions(zarr_format=4)


def test_a_v2_run_resumes(outputs, tmp_path):
    out = tmp_path / "r.zarr"
    model = build_unet("unet", in_channels=3, classes=3, base=4, depth=2).eval()
    # the fixture's model has other random weights: compare with a fresh run of this one
    tilerun.run(outputs / "scene.tif", model, tmp_path / "ref.zarr",
                tilerun.PredictOptions(**OPTIONS, zarr_format=2))
    with pytest.raises(KeyboardInterrupt):
        tilerun.run(outputs / "scene.tif", model, out,
                    tilerun.PredictOptions(**OPTIONS, zarr_format=2),
                    on_chunk=interrupt_after(4))
    partial = out.with_name(out.name + ".partial")
    settle(lambda: sorted(str(p) for p in partial.rglob("*")))
    summary = tilerun.run(outputs / "scene.tif", model, out,
                          tilerun.PredictOptions(**OPTIONS, zarr_format=2, resume=True))
    assert summary.chunks_resumed >= 4 and summary.chunks_resumed + summary.chunks == 9
    ours = xr.open_zarr(out, mask_and_scale=False)
    reference = xr.open_zarr(tmp_path / "ref.zarr", mask_and_scale=False)
    np.testing.assert_array_equal(ours.labels.values, reference.labels.values)
