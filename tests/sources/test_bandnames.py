"""Bands by name: aliases, matching, and the errors that list what a raster offers."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from conftest import shared_file
from rasterio.transform import from_origin

from tilerun.errors import BandError
from tilerun.sources import GeoTIFFSource, open_source
from tilerun.sources.bandnames import (
    band_labels,
    canonical,
    describe_offer,
    find_band,
    parse_band_list,
    resolve_names,
)
from tilerun.sources.bands import bands_for_model

S2 = "geotiff/rio-tiler-pds/S2A_29RKH_20200219_0_L2A/"
S2_10M = S2 + "S2A_29RKH_20200219_0_L2A_10m_B02-B03-B04-B08_described_scaled.tif"


def test_sensor_ids_and_spellings_are_common_names():
    assert canonical(" B04 ") == "red" and canonical("b8a") == "nir08"
    assert canonical("SR_B5") == "nir08" and canonical("swir1") == "swir16"
    assert canonical("Red") == "red" and canonical("custom") == "custom"


def test_labels_drop_duplicates_and_use_colour_only_when_unnamed():
    assert band_labels("blue", "B02", "Blue", None, "") == ("blue", "B02")
    assert band_labels(None, colour="red") == ("red",)
    assert band_labels("nir", colour="red") == ("nir",)
    assert band_labels(None, colour="gray") == ()


def test_parse_band_list_mixes_numbers_and_names():
    assert parse_band_list("3, 2,1") == (3, 2, 1)
    assert parse_band_list("red,green,4") == ("red", "green", 4)


def test_names_resolve_case_insensitively_through_aliases():
    offered = [("blue", "B02"), ("green",), ("B04",), ("nir08",)]
    assert resolve_names("f", offered, ["RED", "b02", 2]) == (3, 1, 2)


def test_nir_stands_for_nir08_only_without_an_exact_match():
    assert find_band("f", [("red",), ("nir08",)], "nir") == 2
    assert find_band("f", [("nir08",), ("nir",)], "nir") == 2
    assert find_band("f", [("red",)], "nir") is None


def test_ambiguous_and_missing_names_are_one_line_errors():
    with pytest.raises(BandError, match=r"bands \[1, 2\] are all called 'rededge'"):
        find_band("f", [("rededge", "rededge1"), ("rededge", "rededge2")], "rededge")
    with pytest.raises(BandError, match=r"no band named 'swir16'; it offers 1 blue \(B02\), "
                                        r"2 unnamed"):
        resolve_names("f", [("blue", "B02"), ()], ["swir16"])
    assert describe_offer([("B04",)]) == "1 red (B04)"


def test_model_bands_only_where_the_raster_names_them():
    labels = [("blue",), ("green",), ("red",)]
    assert bands_for_model("f", labels, ("red", "green", "blue")) == (3, 2, 1)
    assert bands_for_model("f", [(), (), ()], ("red", "green", "blue")) is None
    assert bands_for_model("f", [("x",), ("y",), ("z",)], ("red", "green", "blue")) is None
    assert bands_for_model("f", labels, None) is None
    with pytest.raises(BandError, match="no band named 'nir', which the model takes"):
        bands_for_model("f", labels, ("red", "nir"))


def test_geotiff_bands_by_description_and_tag():
    path = shared_file(S2_10M)
    source = GeoTIFFSource(path, bands=["nir", "B04", 2])
    assert source.bands == (4, 3, 2)
    assert source.band_labels == (("nir", "B08"), ("red", "B04"), ("green", "B03"))
    assert source.scale_offset is not None and source.scale_offset.scales == (1e-4,) * 3
    chosen = GeoTIFFSource(path, model_bands=("red", "green", "blue"))
    assert chosen.bands == (3, 2, 1)
    with pytest.raises(BandError, match=r"has no band named 'swir16'; it offers 1 blue \(B02\)"):
        open_source(path, ["swir16"])


def test_default_gdal_colours_never_choose_a_models_bands(tmp_path):
    """GDAL marks any 3-band byte GeoTIFF red, green, blue: asked for by name, the colours
    answer; for a model's automatic choice they do not (they may not be true)."""
    path = tmp_path / "bgr.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(0, 0, 10, 10)) as dst:
        dst.write(np.zeros((3, 8, 8), np.uint8))
    assert GeoTIFFSource(path, bands=["blue", "red"]).bands == (3, 1)
    assert GeoTIFFSource(path, model_bands=("blue", "green", "red")).bands == (1, 2, 3)
