"""Tissue detection: Otsu, the saturation mask, TissueMask windows and load_mask."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import zarr

from tilerun.errors import InputError, TilerunWarning
from tilerun.geometry import Window
from tilerun.report.png import encode_png
from tilerun.tissue import TissueMask, load_mask, otsu_threshold, tissue_mask
from tilerun.tissue import detect as tissue


@pytest.fixture(params=["scipy", "numpy"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with scipy.ndimage (the 'vector' extra, installed by 'dev') and with the
    numpy fallback (a plain install)."""
    if request.param == "numpy":
        monkeypatch.setattr(tissue, "_scipy_ndimage", lambda: None)
    return str(request.param)


# --- Otsu ------------------------------------------------------------------------------------


def test_otsu_bimodal_mixture_threshold_between_modes() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.1, 0.03, 7000), rng.normal(0.6, 0.08, 3000)])
    t = otsu_threshold(values)
    assert 0.2 < t < 0.45
    # Well-separated modes: the threshold is inside the gap, wherever the modes' tails end.
    gapped = np.concatenate([rng.uniform(0, 1, 500), rng.uniform(9, 10, 500)])
    assert 1 < otsu_threshold(gapped) < 9
    assert 4 < otsu_threshold(gapped) < 6  # the middle of the tie, not the edge of a mode


def test_otsu_edge_cases() -> None:
    assert otsu_threshold(np.full(10, 3.5)) == 3.5
    assert otsu_threshold(np.array([0.0, 1.0, np.nan])) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError):
        otsu_threshold(np.array([np.nan]))


# --- the mask from a thumbnail ---------------------------------------------------------------


def synthetic_thumbnail(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """White noisy glass with pink (eosin) and purple (haematoxylin) ellipses; truth mask."""
    rng = np.random.default_rng(seed)
    h, w = 160, 200
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.empty((3, h, w), np.float32)
    image[:] = np.array([243, 242, 246], np.float32)[:, None, None]
    truth = np.zeros((h, w), bool)
    blobs = [  # (cy, cx, ry, rx, colour)
        (45, 50, 30, 38, (232, 150, 205)),  # pink
        (110, 140, 35, 45, (135, 85, 170)),  # purple
        (40, 160, 18, 22, (200, 120, 190)),
        (125, 40, 14, 20, (245, 180, 215)),  # pale pink
    ]
    for cy, cx, ry, rx, colour in blobs:
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        truth |= inside
        image[:, inside] = np.array(colour, np.float32)[:, None]
    image += rng.normal(0, 3, image.shape) + truth * rng.normal(0, 8, image.shape)
    # Grey dust (unsaturated) and a few saturated single-pixel specks on the glass.
    image[:, 5:8, 100:103] = 90
    for y, x in [(150, 110), (8, 190), (90, 95)]:
        image[:, y, x] = (200, 60, 150)
    return np.clip(image, 0, 255).astype(np.uint8), truth


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_tissue_mask_recovers_blobs(backend: str) -> None:
    rgb, truth = synthetic_thumbnail()
    mask = tissue_mask(rgb)
    assert mask.dtype == bool and mask.shape == truth.shape
    assert iou(mask, truth) >= 0.9
    assert iou(tissue_mask(rgb, max_threshold=1.0), truth) >= 0.9  # Otsu alone, no cap
    assert not mask[150, 110] and not mask[8, 190]  # specks removed
    assert not mask[5:8, 100:103].any()  # grey dust is not tissue


def test_tissue_mask_blank_slide_is_empty(backend: str) -> None:
    rng = np.random.default_rng(1)
    white = np.clip(rng.normal(244, 3, (3, 64, 80)), 0, 255).astype(np.uint8)
    assert not tissue_mask(white).any()
    assert not tissue_mask(np.full((3, 32, 32), 255, np.uint8)).any()
    assert not tissue_mask(np.zeros((3, 32, 32), np.uint8)).any()  # max == 0 → S = 0


def test_tissue_filled_thumbnail_keeps_pale_tissue(backend: str) -> None:
    rng = np.random.default_rng(4)
    rgb = np.empty((3, 60, 60), np.float32)
    rgb[:] = np.array([235, 185, 215], np.float32)[:, None, None]  # pale eosin, S ≈ 0.21
    rgb[:, 20:40, 20:40] = np.array([120, 70, 160], np.float32)[:, None, None]  # dark nuclei
    rgb = np.clip(rgb + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)
    assert tissue_mask(rgb).mean() > 0.98


def test_tissue_mask_rgba_alpha_and_bad_shape() -> None:
    rgb, truth = synthetic_thumbnail()
    alpha = np.full(truth.shape, 255, np.uint8)
    alpha[:, :100] = 0
    mask = tissue_mask(np.concatenate([rgb, alpha[None]]))
    assert not mask[:, :100].any() and mask[:, 100:].any()
    with pytest.raises(ValueError):
        tissue_mask(rgb[:2])


def test_tissue_touching_the_border_is_kept(backend: str) -> None:
    rgb = np.full((3, 40, 40), 245, np.uint8)
    rgb[:, :, :10] = np.array([140, 80, 170], np.uint8)[:, None, None]  # tissue at the left edge
    mask = tissue_mask(rgb, min_size=0)
    assert mask[:, :10].all() and not mask[:, 10:].any()


def test_numpy_fallback_matches_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    masks = [rng.random((60, 70)) < p for p in (0.2, 0.45, 0.6)]
    masks.append(synthetic_thumbnail(2)[1])
    expected = [
        (tissue._open(m, 2), tissue._close(m, 1), tissue.remove_small_components(m, 7))
        for m in masks
    ]
    monkeypatch.setattr(tissue, "_scipy_ndimage", lambda: None)
    for m, (opened, closed, cleaned) in zip(masks, expected, strict=True):
        np.testing.assert_array_equal(tissue._open(m, 2), opened)
        np.testing.assert_array_equal(tissue._close(m, 1), closed)
        np.testing.assert_array_equal(tissue.remove_small_components(m, 7), cleaned)


def test_remove_small_components_uses_8_connectivity(backend: str) -> None:
    mask = np.zeros((8, 8), bool)
    mask[[1, 2, 3], [1, 2, 3]] = True  # a 3-pixel diagonal: one component of size 3
    mask[6, 6] = True
    out = tissue.remove_small_components(mask, 3)
    assert out[[1, 2, 3], [1, 2, 3]].all() and not out[6, 6]


# --- TissueMask -------------------------------------------------------------------------------


def test_covers_and_fraction_integer_scale() -> None:
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = True
    tm = TissueMask(mask, (10, 10))
    assert tm.fraction == pytest.approx(1 / 16)
    assert tm.covers(Window(10, 20, 10, 10))
    assert not tm.covers(Window(0, 0, 10, 20))
    assert not tm.covers(Window(0, 0, 10, 40))  # row 0 only
    assert tm.covers(Window(19, 29, 2, 2))  # straddles four mask pixels, one is tissue
    assert not tm.covers(Window(20, 20, 5, 5))
    assert not tm.covers(Window(12, 22, 0, 5))  # empty window
    assert tm.window_fraction(Window(10, 20, 10, 10)) == pytest.approx(1.0)
    assert tm.window_fraction(Window(0, 0, 40, 40)) == pytest.approx(1 / 16)
    assert tm.window_fraction(Window(15, 25, 10, 10)) == pytest.approx(0.25)
    assert tm.window_fraction(Window(0, 0, 10, 10)) == 0.0


def test_covers_non_integer_scale_and_image_edges() -> None:
    mask = np.zeros((3, 3), bool)
    mask[2, 2] = True  # output pixels [6.67, 10) on both axes
    tm = TissueMask.fit(mask, 10, 10)
    assert tm.scale == pytest.approx((10 / 3, 10 / 3))
    assert tm.covers(Window(6, 6, 1, 1))  # [6, 7) touches [6.67, 10)
    assert not tm.covers(Window(5, 5, 1, 1))  # [5, 6) does not
    assert tm.window_fraction(Window(6, 6, 1, 1)) == pytest.approx(1 / 9)
    # A window hanging over the far edge: only its in-image part counts.
    assert tm.covers(Window(8, 8, 40, 40))
    assert tm.window_fraction(Window(8, 8, 40, 40)) == pytest.approx(1.0)
    assert not tm.covers(Window(10, 0, 5, 5)) and tm.window_fraction(Window(10, 0, 5, 5)) == 0
    # Negative offsets (mirror-padded tiles) are clipped at 0.
    corner = TissueMask.fit(np.eye(3, dtype=bool)[::-1], 10, 10)  # tissue at (0, 2) …
    assert not corner.covers(Window(-5, -5, 8, 8))
    assert corner.covers(Window(-5, 5, 8, 8))


def test_window_fraction_matches_supersampled_brute_force() -> None:
    rng = np.random.default_rng(5)
    mask = rng.random((3, 5)) < 0.5
    tm = TissueMask.fit(mask, 10, 12)  # scales 10/3 and 12/5: supersample by 3 and 5
    fine = np.repeat(np.repeat(mask, 10, axis=0), 12, axis=1)  # 30 × 60 cells of 1/3 × 1/5 px
    for _ in range(300):
        y, x = rng.integers(-4, 12, 2)
        h, w = rng.integers(0, 9, 2)
        window = Window(int(y), int(x), int(h), int(w))
        ys = slice(max(3 * y, 0), max(min(3 * (y + h), 30), 0))
        xs = slice(max(5 * x, 0), max(min(5 * (x + w), 60), 0))
        cells = fine[ys, xs]
        expected = float(cells.mean()) if cells.size and h and w else 0.0
        assert tm.covers(window) == bool(cells.any() and h and w), window
        assert tm.window_fraction(window) == pytest.approx(expected, abs=1e-9), window


def test_tissue_mask_is_read_only_copy() -> None:
    source = np.zeros((2, 2), np.uint8)
    tm = TissueMask(source, (1, 1))
    source[0, 0] = 1
    assert not tm.mask.any() and tm.mask.dtype == bool
    with pytest.raises(ValueError):
        tm.mask[0, 0] = True
    with pytest.raises(ValueError):
        TissueMask(np.zeros(3, bool), (1, 1))
    with pytest.raises(ValueError):
        TissueMask(np.zeros((2, 2), bool), (0, 1))


# --- load_mask --------------------------------------------------------------------------------


def example_mask() -> np.ndarray:
    mask = np.zeros((50, 40), bool)
    mask[10:30, 5:25] = True
    mask[40:45, 30:38] = True
    return mask


def test_load_mask_png(tmp_path) -> None:  # type: ignore[no-untyped-def]
    mask = example_mask()
    path = tmp_path / "mask.png"
    path.write_bytes(encode_png(mask.astype(np.uint8) * 255))
    tm = load_mask(path, 500, 400)
    np.testing.assert_array_equal(tm.mask, mask)
    assert tm.scale == (10.0, 10.0)


def test_load_mask_tiff_non_integer_scale(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import tifffile
    mask = example_mask()
    path = tmp_path / "mask.tif"
    tifffile.imwrite(path, mask.astype(np.uint8))
    tm = load_mask(path, 333, 266)
    np.testing.assert_array_equal(tm.mask, mask)
    assert tm.scale == pytest.approx((333 / 50, 266 / 40))


def test_load_mask_zarr_array_and_group(tmp_path) -> None:  # type: ignore[no-untyped-def]
    mask = example_mask()
    group = zarr.open_group(tmp_path / "m.zarr", mode="w", zarr_format=3)
    group.create_array("a_float", shape=(50, 40), dtype="float32")  # not a mask: skipped
    group.create_array("b_rgb", shape=(3, 50, 40), dtype="uint8")  # 3-D: skipped
    sub = group.create_group("c")
    sub.create_array("tissue", shape=(50, 40), dtype="bool", chunks=(16, 16))[:] = mask
    tm = load_mask(tmp_path / "m.zarr", 100, 80)
    np.testing.assert_array_equal(tm.mask, mask)
    assert tm.scale == (2.0, 2.0)
    direct = load_mask(tmp_path / "m.zarr" / "c" / "tissue", 100, 80)
    np.testing.assert_array_equal(direct.mask, mask)


def test_load_mask_reduces_large_masks_with_block_any(tmp_path) -> None:  # type: ignore[no-untyped-def]
    mask = np.zeros((50, 40), bool)
    mask[13, 7] = True  # a single pixel must survive the reduction
    mask[49, 39] = True  # in the partial last block
    arr = zarr.create_array(tmp_path / "big.zarr", shape=(50, 40), dtype="uint8", chunks=(8, 8))
    arr[:] = mask.astype(np.uint8)
    tm = load_mask(tmp_path / "big.zarr", 500, 400, max_size=16)  # factor ceil(50/16) = 4
    assert tm.mask.shape == (13, 10)
    assert tm.scale == (40.0, 40.0)
    assert tm.mask.sum() == 2 and tm.mask[3, 1] and tm.mask[12, 9]
    assert tm.covers(Window(130, 70, 10, 10)) and not tm.covers(Window(0, 0, 120, 400))


def test_load_mask_errors_name_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(InputError) as info:
        load_mask(bad, 10, 10)
    message = str(info.value)
    assert str(bad) in message and "\n" not in message
    with pytest.raises(InputError, match="no such"):
        load_mask(tmp_path / "missing.png", 10, 10)
    empty = zarr.open_group(tmp_path / "empty.zarr", mode="w", zarr_format=3)
    empty.create_array("x", shape=(4,), dtype="uint8")
    with pytest.raises(InputError, match=r"empty\.zarr"):
        load_mask(tmp_path / "empty.zarr", 10, 10)


def test_load_mask_warns_on_aspect_mismatch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "mask.png"
    path.write_bytes(encode_png(example_mask().astype(np.uint8)))
    with pytest.warns(TilerunWarning, match="aspect"):
        load_mask(path, 500, 800)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_mask(path, 501, 399)  # rounding differences are fine
