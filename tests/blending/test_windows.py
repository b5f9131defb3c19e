"""Tests of the blending weight windows (tilerun.blending.windows)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilerun.blending import BLEND_MODES, Blend
from tilerun.blending.windows import MIN_WEIGHT
from tilerun.errors import OptionError
from tilerun.geometry import TileGrid, make_grid

FAST = settings(max_examples=60, deadline=None)


@st.composite
def grids(draw: st.DrawFn, max_tile: int = 256) -> TileGrid:
    m = draw(st.sampled_from((1, 2, 16, 32)))
    tile = m * draw(st.integers(1, max(1, max_tile // m)))
    overlap = m * draw(st.integers(0, tile // m - 1))
    length = draw(st.integers(1, 3 * max_tile))
    return make_grid(length, length, tile, overlap, multiple=m)


modes = st.sampled_from(BLEND_MODES)


@FAST
@given(modes, grids())
def test_weights_shape_dtype_peak_symmetry(mode: str, grid: TileGrid) -> None:
    blend = Blend(mode)
    w = blend.weights(grid)
    p = blend.profile(grid)
    assert w.shape == (grid.tile, grid.tile)
    assert w.dtype == np.float32
    assert p.shape == (grid.tile,)
    assert p.dtype == np.float32
    assert np.all(np.isfinite(w))
    assert w.max() == pytest.approx(1.0, abs=1e-6)
    assert w.min() >= 0.0
    # separable: outer product of the 1-D profile
    np.testing.assert_allclose(w, np.outer(p, p), rtol=1e-6, atol=0)
    # the same window along y and x
    np.testing.assert_array_equal(w, w.T)
    if mode != "crop":
        # symmetric about the tile centre (crop is not when M != O - M)
        np.testing.assert_allclose(p, p[::-1], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(w, w[::-1, ::-1], rtol=1e-5, atol=1e-7)


@FAST
@given(st.sampled_from([m for m in BLEND_MODES if m != "crop"]), grids())
def test_strictly_positive_except_crop(mode: str, grid: TileGrid) -> None:
    blend = Blend(mode)
    assert np.all(blend.weights(grid) > 0)
    assert blend.support(grid) == (0, grid.tile)
    assert blend.support(grid) == (0, grid.tile)


@FAST
@given(st.sampled_from(["gaussian", "hann", "linear"]), grids(max_tile=128))
def test_tapering_profiles_peak_in_the_middle(mode: str, grid: TileGrid) -> None:
    p = Blend(mode).profile(grid).astype(np.float64)
    half = (grid.tile + 1) // 2
    # non-decreasing towards the centre, and the edge weighs less than the centre when T > 2
    assert np.all(np.diff(p[:half]) >= -1e-7)
    if grid.tile > 2:
        assert p[0] < p[half - 1]


@FAST
@given(grids())
def test_crop_is_indicator_of_core(grid: TileGrid) -> None:
    blend = Blend("crop")
    p = blend.profile(grid)
    m, s = grid.margin, grid.stride
    expected = np.zeros(grid.tile, dtype=np.float32)
    expected[m : m + s] = 1
    np.testing.assert_array_equal(p, expected)
    w = blend.weights(grid)
    core = np.zeros((grid.tile, grid.tile), dtype=bool)
    core[m : m + s, m : m + s] = True
    assert np.all(w[core] == 1)
    assert np.all(w[~core] == 0)
    assert blend.support(grid) == (m, m + s)


@FAST
@given(modes, grids())
def test_support_matches_nonzero_range(mode: str, grid: TileGrid) -> None:
    blend = Blend(mode)
    start, stop = blend.support(grid)
    p = blend.profile(grid)
    assert 0 <= start < stop <= grid.tile
    assert np.all(p[start:stop] > 0)
    assert np.all(p[:start] == 0)
    assert np.all(p[stop:] == 0)
    w = blend.weights(grid)
    assert np.all(w[start:stop, start:stop] > 0)
    assert np.count_nonzero(w) == (stop - start) ** 2


def _line_sum(blend: Blend, grid: TileGrid, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum of 1-D weights and number of covering tiles over [0, length) for tiles at k*S - M."""
    p = blend.profile(grid).astype(np.float64)
    n = max(1, math.ceil(length / grid.stride))
    total = np.zeros(length)
    count = np.zeros(length, dtype=np.int64)
    for k in range(n):
        origin = k * grid.stride - grid.margin
        a, b = max(origin, 0), min(origin + grid.tile, length)
        if a < b:
            total[a:b] += p[a - origin : b - origin]
            count[a:b] += 1
    return total, count


@settings(max_examples=100, deadline=None)
@given(modes, grids(max_tile=128))
def test_line_of_tiles_leaves_no_pixel_uncovered(mode: str, grid: TileGrid) -> None:
    length = grid.height
    blend = Blend(mode)
    total, count = _line_sum(blend, grid, length)
    assert np.all(count >= 1)
    assert np.all(total > 0), f"uncovered pixels at {np.flatnonzero(total <= 0)[:10]}"
    if mode == "constant":
        np.testing.assert_array_equal(total, count.astype(np.float64))
    if mode == "crop":
        # the cores partition the line: every pixel gets weight exactly 1
        np.testing.assert_array_equal(total, np.ones(length))


@settings(max_examples=30, deadline=None)
@given(modes, grids(max_tile=48))
def test_2d_sum_of_weights_positive(mode: str, grid: TileGrid) -> None:
    blend = Blend(mode)
    w = blend.weights(grid).astype(np.float64)
    h = wd = grid.height
    acc = np.zeros((h, wd))
    cnt = np.zeros((h, wd), dtype=np.int64)
    img = grid.image_window()
    for r in range(grid.rows):
        for c in range(grid.cols):
            tw = grid.tile_window(r, c)
            inter = tw.intersection(img)
            acc[inter.slices()] += w[inter.slices(tw)]
            cnt[inter.slices()] += 1
    assert np.all(acc > 0)
    if mode == "constant":
        np.testing.assert_array_equal(acc, cnt.astype(np.float64))


@FAST
@given(grids(), st.floats(0.01, 2.0))
def test_gaussian_sigma(grid: TileGrid, sigma: float) -> None:
    p = Blend("gaussian", sigma=sigma).profile(grid).astype(np.float64)
    u = (np.arange(grid.tile) + 0.5) / grid.tile
    ref = np.exp(-((u - 0.5) ** 2) / (2 * sigma**2))
    ref = np.maximum(ref / ref.max(), MIN_WEIGHT)  # the documented floor
    np.testing.assert_allclose(p, ref, rtol=1e-5, atol=1e-30)


def test_gaussian_narrower_sigma_weighs_edges_less() -> None:
    grid = make_grid(512, 512, 128, 32, multiple=16)
    wide = Blend("gaussian", sigma=0.5).profile(grid)
    narrow = Blend("gaussian", sigma=0.125).profile(grid)
    assert narrow[0] < wide[0]
    assert narrow[0] > 0


@pytest.mark.parametrize("sigma", [0.02, 0.04])
def test_small_sigma_keeps_every_weight_positive(sigma: float) -> None:
    """The module promises strictly positive weights; the engine divides by their sum.

    With ``overlap=0`` the image corner is covered by a single tile, at its corner, so a zero
    weight there makes ``assemble`` raise "pixels ... received no tile weight".
    """
    grid = make_grid(512, 512, 256, 0, multiple=16)
    blend = Blend("gaussian", sigma=sigma)
    assert np.all(blend.weights(grid) > 0)


def test_known_profiles() -> None:
    grid = make_grid(16, 16, 4, 2)
    np.testing.assert_allclose(Blend("constant").profile(grid), [1, 1, 1, 1])
    np.testing.assert_allclose(Blend("crop").profile(grid), [0, 1, 1, 0])
    # linear at centres 1/8, 3/8, 5/8, 7/8 -> 1/4, 3/4, 3/4, 1/4, peak-normalised
    np.testing.assert_allclose(Blend("linear").profile(grid), [1 / 3, 1, 1, 1 / 3], rtol=1e-6)
    s = np.sin(np.pi / 8) ** 2 / np.sin(3 * np.pi / 8) ** 2
    np.testing.assert_allclose(Blend("hann").profile(grid), [s, 1, 1, s], rtol=1e-6)


def test_default_blend() -> None:
    assert Blend() == Blend("gaussian", 0.125)


@pytest.mark.parametrize("name", ["Gaussian", "", "box", "cosine", "none"])
def test_unknown_mode_raises(name: str) -> None:
    with pytest.raises(OptionError):
        Blend(name)


@pytest.mark.parametrize("sigma", [0.0, -0.1, -1.0, float("nan"), -float("inf")])
@pytest.mark.parametrize("mode", BLEND_MODES)
def test_non_positive_sigma_raises(mode: str, sigma: float) -> None:
    with pytest.raises(OptionError):
        Blend(mode, sigma=sigma)


@FAST
@given(st.floats(max_value=0.0, allow_nan=False))
def test_non_positive_sigma_raises_property(sigma: float) -> None:
    with pytest.raises(OptionError):
        Blend("gaussian", sigma=sigma)
