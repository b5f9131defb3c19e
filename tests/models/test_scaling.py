"""Real products on the first try: the raster's scale/offset, bands by name, STAC items.

Every test runs a tiny fixed model whose spec names its bands and normalises reflectance
(``mean`` 0.3, ``std`` 0.1) over the real Sentinel-2 L2A / Landsat 8 excerpts in
../shared/data, and compares the labels with those of the same pixels prepared by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from conftest import Asymmetric, shared_file
from rasterio.enums import Resampling
from rasterio.warp import reproject

import tilerun
from tilerun.errors import InputError, NonFiniteError
from tilerun.models import ModelSpec, as_model
from tilerun.models.normalise import Normalizer
from tilerun.report.text import scaling_text
from tilerun.sources import ScaleOffset

S2 = "geotiff/rio-tiler-pds/S2A_29RKH_20200219_0_L2A/"
S2_10M = S2 + "S2A_29RKH_20200219_0_L2A_10m_B02-B03-B04-B08_described_scaled.tif"
L8 = ("geotiff/rio-tiler-pds/LC08_L2SP_001062_20201031_20201106_02_T2/"
      "LC08_L2SP_001062_20201031_20201106_02_T2_SR_B2-B7_described_scaled.tif")
S2_ITEM = "stac/written-here/S2A_29RKH_20200219_0_L2A_crop.item.json"
SIX = ("blue", "green", "red", "nir", "swir16", "swir22")


def _model(names: tuple[str, ...], **spec: Any) -> Any:
    fields = {"mean": (0.3,) * len(names), "std": (0.1,) * len(names), "dtype": "float32"}
    fields.update(spec)
    return as_model(Asymmetric(bands=len(names)).eval(),
                    spec=ModelSpec(bands=len(names), band_names=names, **fields))


def _run(source: Any, model: Any, out: Path, **options: Any) -> Any:
    options = {"tile": 64, "overlap": 16, "output": ("labels",), **options}
    return tilerun.predict(source, model, out, **options)


def _write(path: Path, profile: dict[str, Any], data: np.ndarray, **band_meta: Any) -> Path:
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for k, name in enumerate(band_meta.get("names", ()), 1):
            dst.set_band_description(k, name)
        if "scales" in band_meta:
            dst.scales, dst.offsets = band_meta["scales"], band_meta["offsets"]
    return path


@pytest.mark.parametrize("relative", [S2_10M, L8], ids=["sentinel2", "landsat8-offset"])
def test_scaled_counts_give_the_labels_of_the_reflectance_scene(tmp_path, relative):
    """uint16 counts with GDAL scale/offset (Landsat: −0.2) = the float32 reflectance."""
    path = shared_file(relative)
    with rasterio.open(path) as src:
        dn, profile = src.read(), src.profile
        names, scales, offsets = src.descriptions, src.scales, src.offsets
    physical = dn.astype(np.float32) * np.float32(scales[0]) + np.float32(offsets[0])
    physical[dn == 0] = np.nan  # the counts' nodata
    profile.update(dtype="float32", nodata=np.nan)
    reflectance = _write(tmp_path / "reflectance.tif", profile, physical, names=names)
    model = _model(tuple(names))
    counts = _run(path, model, tmp_path / "counts.zarr")
    expected = _run(reflectance, model, tmp_path / "reflectance.zarr").labels.values
    np.testing.assert_array_equal(counts.labels.values, expected)
    record = counts.attrs["tilerun"]["scale_offset"]
    assert record["applied"] and record["offsets"][0] == offsets[0]
    means = [b["mean"] for b in counts.attrs["tilerun"]["report"]["bands"]]
    assert all(-0.2 < m < 1.5 for m in means)  # statistics in reflectance, not in counts


def test_shuffled_named_bands_give_the_same_labels(tmp_path):
    path = shared_file(S2_10M)
    order = [4, 2, 1, 3]
    with rasterio.open(path) as src:
        dn, profile = src.read(order), src.profile
        names = [src.descriptions[k - 1] for k in order]
    shuffled = _write(tmp_path / "shuffled.tif", profile, dn, names=names,
                      scales=[1e-4] * 4, offsets=[0.0] * 4)
    model = _model(("blue", "green", "red", "nir"))
    expected = _run(path, model, tmp_path / "a.zarr").labels.values
    by_spec = _run(shuffled, model, tmp_path / "b.zarr")
    np.testing.assert_array_equal(by_spec.labels.values, expected)
    assert by_spec.attrs["tilerun"]["bands"] == [3, 2, 4, 1]  # what was read, recorded
    assert by_spec.attrs["tilerun"]["band_names"] == ["blue", "green", "red", "nir"]
    by_option = _run(shuffled, model, tmp_path / "c.zarr", bands="B02,green,B04,1")  # nir is 1st
    np.testing.assert_array_equal(by_option.labels.values, expected)
    assert not np.array_equal(_run(shuffled, model, tmp_path / "d.zarr", bands=(1, 2, 3, 4))
                              .labels.values, expected)  # by position: other bands, other labels


def _hand_stack(tmp_path: Path, method: str) -> Path:
    """B02, B03, B04, B08 (100 m) and B11, B12 (200 m, resampled at once) in one file."""
    with rasterio.open(shared_file(S2 + "B02.tif")) as ref:
        profile, grid = ref.profile, (ref.transform, ref.crs, ref.height, ref.width)
    bands = []
    for name in ("B02", "B03", "B04", "B08", "B11", "B12"):
        with rasterio.open(shared_file(f"{S2}{name}.tif")) as src:
            out = np.zeros(grid[2:], np.uint16)
            reproject(src.read(1), out, src_transform=src.transform, src_crs=src.crs,
                      dst_transform=grid[0], dst_crs=grid[1], src_nodata=0,
                      resampling=Resampling[method])
            bands.append(out)
    profile.update(count=6)
    return _write(tmp_path / f"stack_{method}.tif", profile, np.stack(bands), names=SIX,
                  scales=[1e-4] * 6, offsets=[0.0] * 6)


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
def test_stac_item_gives_the_labels_of_the_bands_stacked_by_hand(tmp_path, method):
    item = shared_file(S2_ITEM)
    model = _model(SIX)
    expected = _run(_hand_stack(tmp_path, method), model, tmp_path / "hand.zarr")
    ds = _run(item, model, tmp_path / "item.zarr", resampling=method)
    np.testing.assert_array_equal(ds.labels.values, expected.labels.values)
    np.testing.assert_array_equal(ds.x.values, expected.x.values)  # the item's grid
    np.testing.assert_array_equal(ds.y.values, expected.y.values)
    assert ds.attrs["tilerun"]["scale_offset"]["origin"] == "STAC raster:bands"


def test_per_band_files_stack_as_the_item_does(tmp_path):
    """The same files given as a list, in any order, chosen by their names (B04 = red …);
    bare counts (no scale/offset in the files), so for a model that takes counts."""
    model = _model(SIX, mean=(3000.0,) * 6, std=(1000.0,) * 6, dtype="uint16")
    expected = _run(_hand_stack(tmp_path, "bilinear"), model, tmp_path / "hand.zarr")
    files = [shared_file(f"{S2}{n}.tif") for n in ("B12", "B04", "B02", "B08", "B03", "B11")]
    per_band = _run(files, model, tmp_path / "files.zarr", resampling="bilinear")
    np.testing.assert_array_equal(per_band.labels.values, expected.labels.values)
    assert per_band.attrs["tilerun"]["scale_offset"] is None


def test_model_trained_on_counts_gets_the_counts(tmp_path):
    path = shared_file(S2_10M)
    with rasterio.open(path) as src:
        plain = _write(tmp_path / "plain.tif", src.profile, src.read())  # no names, no scale
    counts = dict(mean=(3000.0,) * 4, std=(1000.0,) * 4, dtype="uint16")
    for spec in ({**counts, "apply_scale_offset": False}, counts):
        model = _model(("blue", "green", "red", "nir"), **spec)
        ds = _run(path, model, tmp_path / f"{len(spec)}.zarr")
        expected = _run(plain, model, tmp_path / f"plain{len(spec)}.zarr").labels.values
        np.testing.assert_array_equal(ds.labels.values, expected)
        record = ds.attrs["tilerun"]["scale_offset"]
        assert not record["applied"] and "counts" in scaling_text(record) + record["reason"]


def test_counts_without_scale_offset_get_the_right_advice(tmp_path):
    """A float model on bare uint16 counts: the fix is the scale/offset, not a type change."""
    path = shared_file(S2 + "B02.tif")
    with pytest.raises(InputError, match=r"declares no scale/offset.*gdal_edit\.py -scale") as err:
        _run(path, _model(("blue",)), tmp_path / "o.zarr")
    assert "gdal_translate" not in str(err.value)
    assert not (tmp_path / "o.zarr").exists()


def test_normaliser_applies_scale_offset_before_embedded_normalisation():
    """A graph that normalises itself gets the physical values (x · gain + bias)."""
    handle = as_model(Asymmetric(bands=2).eval(), spec=ModelSpec(
        bands=2, mean=(0.3, 0.3), std=(0.1, 0.1), embedded_normalisation=True))
    scaling = ScaleOffset((1e-4, 2.75e-5), (0.0, -0.2), "test")
    norm = Normalizer.for_model(handle, 2, np.dtype(np.float32), scaling)
    pixels = torch.tensor([[[1000, 0]], [[20000, 8000]]], dtype=torch.int32)
    valid = torch.tensor([[[True, False]], [[True, True]]])
    out = norm(pixels, valid).numpy()
    np.testing.assert_allclose(out, [[[0.1, 0.3]], [[0.35, 0.02]]], rtol=1e-6)


def test_options_take_band_names_and_check_the_resampling():
    from tilerun.engine.options import RESAMPLINGS, PredictOptions
    from tilerun.errors import OptionError
    from tilerun.sources import RESAMPLING

    assert PredictOptions.from_kwargs(bands="red, B08,3").bands == ("red", "B08", 3)
    assert PredictOptions.from_kwargs(bands=["nir", 2]).bands == ("nir", 2)
    assert RESAMPLINGS == RESAMPLING  # the CLI's choices are the stack's methods
    with pytest.raises(OptionError, match="--resampling"):
        PredictOptions(resampling="lanczos9")


def test_counts_specs_are_recognised():
    from tilerun.models.scaling import takes_counts

    assert not takes_counts(ModelSpec(mean=(0.3,), std=(0.1,), dtype="float32"))
    assert not takes_counts(ModelSpec())
    assert takes_counts(ModelSpec(apply_scale_offset=False))
    assert takes_counts(ModelSpec(dtype="uint16"))
    assert takes_counts(ModelSpec(scale="dtype_range"))


def test_real_cloud_mask_on_the_stac_item_finds_the_scenes_clouds(tmp_path):
    """ukis-csmask's 6-band L2A cloud/shadow U-Net (ONNX, trained on reflectance), given the
    STAC item as it is: its cloud class covers the clouds of the product's own scene
    classification (SCL 8, 9, 10) and little else. Measured: 68 % of SCL cloud pixels,
    1.7 % of the others. Fed the raw counts, the same model gives non-finite logits."""
    import dataclasses
    import json

    csmask = pytest.importorskip("ukis_csmask")
    folder = Path(csmask.__file__).parent
    stats = json.loads((folder / "model_6b_l2a.json").read_text())["data"]["dataset_statistics"]
    spec = ModelSpec(bands=6, band_names=tuple(stats["band_names"]), mean=tuple(stats["img"][0]),
                     std=tuple(stats["img"][1]), class_names=("clear", "cloud", "shadow"),
                     dtype="float32")
    model = as_model(folder / "model_6b_l2a.onnx", spec=spec)
    labels = _run(shared_file(S2_ITEM), model, tmp_path / "o.zarr", tile=256, overlap=64,
                  backend="onnxruntime").labels.values
    with rasterio.open(shared_file(S2 + "SCL.tif")) as src:
        cloud = np.isin(np.repeat(np.repeat(src.read(1), 2, 0), 2, 1), [8, 9, 10])
    assert 0.2 < cloud.mean() < 0.6
    assert (labels[cloud] == 1).mean() > 0.5
    assert (labels[~cloud] == 1).mean() < 0.05
    counts = as_model(folder / "model_6b_l2a.onnx",
                      spec=dataclasses.replace(spec, apply_scale_offset=False, dtype=None))
    with pytest.raises(NonFiniteError):
        _run(shared_file(S2_ITEM), counts, tmp_path / "c.zarr", tile=256, overlap=64,
             backend="onnxruntime")
