"""COG export: georeferencing, COG layout, overviews and their resampling, colours, values."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr
from export_fixtures import CLASS_COLOURS, CLASS_NAMES, NODATA, blobs, write_output

from tilerun.errors import InputError, OptionError
from tilerun.exports import export

BLOCK = 32


def scene_labels() -> np.ndarray:
    labels = blobs(128, 160, seed=4)
    labels[:, 96:128] = np.where(np.arange(32) % 2 == 0, 0, 2)[None, :]  # 0/2 stripes
    labels[100:, :20] = NODATA
    return labels


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("cog")
    return write_output(root, scene_labels(), chunk=48,
                        output=("labels", "probabilities", "logits"))


@pytest.fixture(scope="module")
def labels_cog(store, tmp_path_factory):
    path = tmp_path_factory.mktemp("cog-out") / "labels.tif"
    export(store, path, blocksize=BLOCK)
    return path


def test_georeferencing_matches_the_store(store, labels_cog):
    import rioxarray  # noqa: F401

    ds = xr.open_zarr(store, decode_coords="all")
    with rasterio.open(labels_cog) as cog:
        assert cog.crs == ds.rio.crs
        assert cog.transform == ds.rio.transform()
        assert (cog.height, cog.width) == ds.labels.shape


def test_is_a_tiled_cog_with_overviews(labels_cog):
    with rasterio.open(labels_cog) as cog:
        assert cog.driver == "GTiff"
        assert cog.profile["tiled"]
        assert cog.block_shapes == [(BLOCK, BLOCK)]
        assert cog.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert cog.overviews(1) == [2, 4, 8]  # until 160 px fit one 32 px tile
        assert cog.nodata == NODATA


def test_labels_values_and_colour_table(labels_cog):
    with rasterio.open(labels_cog) as cog:
        np.testing.assert_array_equal(cog.read(1), scene_labels())
        colours = cog.colormap(1)
        for value, colour in enumerate(CLASS_COLOURS):
            rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
            assert colours[value] == (*rgb, 255)
        assert colours[NODATA][3] == 0  # nodata transparent
        assert cog.descriptions == ("labels",)


def test_label_overviews_use_mode_not_average(labels_cog):
    with rasterio.open(labels_cog, overview_level=0) as overview:
        stripes = overview.read(1)[:, 48:64]  # the 0/2 stripes, halved
    assert set(np.unique(stripes).tolist()) <= {0, 2}  # an average would make class 1


def test_probability_codes_scale_and_average_overviews(store, tmp_path):
    path = tmp_path / "p.tiff"
    export(store, path, variable="probabilities", blocksize=BLOCK)
    codes = np.asarray(zarr.open_group(store, mode="r")["probabilities"][:])
    with rasterio.open(path) as cog:
        assert cog.count == 3 and cog.dtypes[0] == "uint8" and cog.nodata == 255
        assert cog.scales == pytest.approx((1 / 254,) * 3) and cog.offsets == (0.0,) * 3
        assert cog.descriptions == CLASS_NAMES
        np.testing.assert_array_equal(cog.read(), codes)
        assert cog.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    with rasterio.open(path, overview_level=0) as overview:
        halved = overview.read(1).astype(float)
    block = codes[0, :64, 20:84].reshape(32, 2, 32, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(halved[:32, 10:42], block, atol=0.51)


def test_logits_are_float32_with_nan_nodata(store, tmp_path):
    path = tmp_path / "logits.tif"
    export(store, path, variable="logits", blocksize=BLOCK)
    logits = np.asarray(zarr.open_group(store, mode="r")["logits"][:])
    with rasterio.open(path) as cog:
        assert cog.dtypes == ("float32",) * 3 and np.isnan(cog.nodata)
        np.testing.assert_array_equal(cog.read(), logits)
        assert cog.overviews(1) == [2, 4, 8]  # until 160 px fit one 32 px tile


def test_missing_variable_and_bad_blocksize_are_one_line_errors(tmp_path):
    store = write_output(tmp_path, scene_labels()[:40, :40], output=("labels",))
    with pytest.raises(InputError, match="has no probabilities"):
        export(store, tmp_path / "p.tif", variable="probabilities")
    with pytest.raises(OptionError, match="multiple of 16"):
        export(store, tmp_path / "p.tif", blocksize=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr", "out.zarr.tif"]
