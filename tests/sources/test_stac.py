"""STAC Items: the assets whose eo:bands match, their raster:bands, relative hrefs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from conftest import shared_file

from tilerun.errors import BandError, InputError
from tilerun.geometry import Window
from tilerun.sources import StackSource, open_source, open_stac_item
from tilerun.sources.stac import band_offers, is_stac_item, stac_band_names

EARTH_SEARCH = "stac/rio-tiler-pds/S2A_29RKH_20200219_0_L2A.json"
S2_ITEM = "stac/written-here/S2A_29RKH_20200219_0_L2A_crop.item.json"
L8_ITEM = "stac/written-here/LC08_L2SP_001062_20201031_20201106_02_T2_5pct.item.json"
COLLECTION = "stac/written-here/s2_l8_itemcollection.json"
S2 = "geotiff/rio-tiler-pds/S2A_29RKH_20200219_0_L2A/"


def test_real_earth_search_item_offers_each_band_once_as_a_cog():
    """The real item lists every band twice (COG and JPEG 2000) plus a visual RGB: the COG
    wins, the visual asset is no input band; scale/offset/nodata come from raster:bands."""
    import pystac

    item = pystac.Item.from_file(str(shared_file(EARTH_SEARCH)))
    offers = band_offers(item, None)
    names = [f.labels for f in offers]
    assert len(names) == len(set(names)) == 15  # 12 spectral bands, aot, scl, wvp
    assert ("blue",) in names and ("scl",) in names
    assert all(f.href.startswith("https://") and f.href.endswith(".tif") for f in offers)
    red = next(f for f in offers if f.labels == ("red",))
    assert red.href.endswith("/B04.tif") and (red.scale, red.offset, red.nodata) == (1e-4, 0, 0)
    assert ("rededge", "rededge1") in stac_band_names(item)


def test_item_bands_resolve_relative_hrefs_and_carry_scale_offset():
    stack = open_stac_item(shared_file(S2_ITEM), ["nir", "red", "swir16"])
    assert isinstance(stack, StackSource) and stack.shape == (3, 320, 320)
    assert [m.name.rsplit("/", 1)[1] for m in stack.members] == ["B08.tif", "B04.tif", "B11.tif"]
    assert stack.scale_offset is not None and stack.scale_offset.scales == (1e-4,) * 3
    assert stack.georef.crs_wkt is not None and "32629" in stack.georef.crs_wkt
    assert stack.georef.transform == (100.0, 0.0, 276780.0, 0.0, -100.0, 2800020.0)
    pixels, _ = stack.read(Window(0, 0, 8, 8))
    with rasterio.open(shared_file(S2 + "B08.tif")) as src:
        np.testing.assert_array_equal(pixels[0], src.read(1)[:8, :8])


def test_landsat_item_has_a_non_zero_offset_and_nir_finds_nir08():
    stack = open_source(shared_file(L8_ITEM), ["blue", "nir"])
    assert stack.band_labels == (("blue", "SR_B2"), ("nir08", "SR_B5"))
    assert stack.scale_offset is not None
    assert stack.scale_offset.scales == (2.75e-05,) * 2
    assert stack.scale_offset.offsets == (-0.2,) * 2


def test_item_dict_without_location_resolves_against_base():
    path = shared_file(COLLECTION)
    feature = json.loads(path.read_text())["features"][0]
    stack = open_stac_item(feature, ["green"], base=str(path.parent))
    assert stack.members[0].name.endswith("B03.tif") and stack.shape == (1, 320, 320)


def test_bad_items_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match=r"is not a STAC Item.*FeatureCollection"):
        open_stac_item(shared_file(COLLECTION), ["red"])
    with pytest.raises(BandError, match=r"has no band named 'rededge1'; it offers 1 blue, "
                                        r"2 green, 3 red, 4 nir, 5 nir08"):
        open_stac_item(shared_file(S2_ITEM), ["red", "rededge1"])
    with pytest.raises(BandError, match="chosen by name: pass --bands"):
        open_stac_item(shared_file(S2_ITEM), None)
    with pytest.raises(InputError, match="no such file"):
        open_stac_item(tmp_path / "absent.json", ["red"])
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    with pytest.raises(InputError, match="not a STAC Item pystac can read"):
        open_stac_item(broken, ["red"])


def test_json_paths_and_urls_are_stac():
    assert is_stac_item("a/item.json") and is_stac_item("https://h/x/item.JSON?sig=1")
    assert not is_stac_item("scene.tif")


def test_item_url_reads_its_relative_assets_over_http(tmp_path):
    """An item served over HTTP: its relative hrefs become URLs, read through GDAL."""
    import subprocess
    import sys
    from pathlib import Path

    item = shared_file(S2_ITEM)
    root = item.parents[2]  # the shared data folder: stac/ and geotiff/ side by side
    script = Path(__file__).with_name("range_server.py")
    log = tmp_path / "requests.log"
    proc = subprocess.Popen([sys.executable, str(script), str(root), str(log)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = f"http://127.0.0.1:{int(proc.stdout.readline())}/{S2_ITEM}"
        remote = open_source(url, ["red", "swir16"])
        assert remote.name == url and remote.members[0].name.endswith("/B04.tif")
        assert remote.members[0].name.startswith("http://127.0.0.1:")
        local = open_source(item, ["red", "swir16"])
        window = Window(100, 50, 64, 80)
        for a, b in zip(remote.read(window), local.read(window), strict=True):
            np.testing.assert_array_equal(a, b)
    finally:
        proc.terminate()
        proc.wait(10)


def test_legacy_stac_0_7_item_offers_its_bands_by_common_name():
    """The real USGS item (STAC 0.7: eo:bands in the properties, indexes in the assets) is
    migrated by pystac; it has no raster:bands, so no scale/offset is taken from it."""
    import pystac

    legacy = "stac/rio-tiler-pds/LC08_L2SP_001062_20201031_20201106_02_T2_SR_stac.json"
    item = pystac.Item.from_file(str(shared_file(legacy)))
    offers = band_offers(item, None)
    assert [f.labels[0] for f in offers] == ["coastal", "blue", "green", "red", "nir08",
                                             "swir16", "swir22"]
    assert offers[4].href.endswith("_SR_B5.TIF") and offers[4].scale is None


def test_projection_extension_places_files_without_georeferencing(tmp_path):
    """Files stripped of CRS and transform: the item's proj:code/proj:transform place them,
    the 20 m one is resampled as when the files carry their own."""
    item = json.loads(shared_file(S2_ITEM).read_text())
    for key, name in (("blue", "B02"), ("swir16", "B11")):
        with rasterio.open(shared_file(f"{S2}{name}.tif")) as src:
            data, profile = src.read(), src.profile
        profile.update(crs=None, transform=rasterio.Affine.identity(), driver="GTiff")
        with rasterio.open(tmp_path / f"{name}.tif", "w", **profile) as dst:
            dst.write(data)
        item["assets"][key]["href"] = str(tmp_path / f"{name}.tif")
    placed = open_stac_item(item, ["blue", "swir16"], resampling="bilinear")
    own = open_stac_item(shared_file(S2_ITEM), ["blue", "swir16"], resampling="bilinear")
    assert placed.georef.transform == own.georef.transform
    assert placed.georef.crs_wkt == own.georef.crs_wkt
    window = Window(30, 40, 64, 64)
    for a, b in zip(placed.read(window), own.read(window), strict=True):
        np.testing.assert_array_equal(a, b)
