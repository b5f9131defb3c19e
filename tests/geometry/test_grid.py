"""Property tests of the global tile grid (tilerun.geometry.grid)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tilerun.errors import OptionError, TilerunWarning
from tilerun.geometry import TileGrid, Window, make_grid

MULTIPLES = (1, 2, 16, 32)
FAST = settings(max_examples=100, deadline=None)


@st.composite
def grids(draw: st.DrawFn, max_side: int = 3000) -> tuple[TileGrid, int]:
    """A valid grid built by ``make_grid`` (fraction or pixel overlap) and its multiple."""
    m = draw(st.sampled_from(MULTIPLES))
    tile = m * draw(st.integers(1, max(1, 512 // m)))
    height = draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    if draw(st.booleans()):
        overlap: float | int = m * draw(st.integers(0, tile // m - 1))
    else:
        overlap = draw(st.floats(0.0, 0.999, allow_nan=False, exclude_max=False))
        # Rounding to the multiple may reach the tile; make_grid rejects that case.
        assume(m * round(overlap * tile / m) < tile)
    return make_grid(height, width, tile, overlap, multiple=m), m


def _axis_origins(grid: TileGrid, axis: int) -> np.ndarray:
    n = grid.rows if axis == 0 else grid.cols
    if axis == 0:
        return np.array([grid.tile_window(k, 0).y for k in range(n)])
    return np.array([grid.tile_window(0, k).x for k in range(n)])


def _axis_cores(grid: TileGrid, axis: int) -> list[tuple[int, int]]:
    n = grid.rows if axis == 0 else grid.cols
    out = []
    for k in range(n):
        w = grid.core_window(k, 0) if axis == 0 else grid.core_window(0, k)
        out.append((w.y, w.bottom) if axis == 0 else (w.x, w.right))
    return out


# --------------------------------------------------------------------------------------------
# Grid geometry
# --------------------------------------------------------------------------------------------


def _check_stride_and_tile_are_multiples(gm: tuple[TileGrid, int]) -> None:
    grid, m = gm
    assert grid.tile % m == 0
    assert grid.overlap % m == 0
    assert grid.stride % m == 0
    assert grid.stride > 0
    assert 0 <= grid.overlap < grid.tile
    assert grid.margin == grid.overlap // 2


def _check_count_formula(gm: tuple[TileGrid, int]) -> None:
    grid, _ = gm
    s = grid.stride
    assert grid.rows == math.ceil(grid.height / s)
    assert grid.cols == math.ceil(grid.width / s)
    assert grid.count == math.ceil(grid.height / s) * math.ceil(grid.width / s)
    # The cores of the tiles cover the image, and one tile fewer on an axis would not.
    assert grid.rows * s >= grid.height > (grid.rows - 1) * s
    assert grid.cols * s >= grid.width > (grid.cols - 1) * s


@FAST
@given(grids())
def test_every_pixel_in_exactly_one_core_per_axis(gm: tuple[TileGrid, int]) -> None:
    grid, _ = gm
    for axis, length in ((0, grid.height), (1, grid.width)):
        cores = _axis_cores(grid, axis)
        n = len(cores)
        hits = np.zeros(n * grid.stride + 1, dtype=np.int64)
        for a, b in cores:
            assert a >= 0
            assert b - a == grid.stride
            hits[a:b] += 1
        # every image pixel is in exactly one core, and together they span [0, n*S)
        assert np.all(hits[:length] == 1)
        assert np.all(hits[: n * grid.stride] == 1)
        assert hits[n * grid.stride] == 0
        # the first core starts exactly at the image border
        assert cores[0][0] == 0


@FAST
@given(grids(), st.data())
def test_2d_core_membership(gm: tuple[TileGrid, int], data: st.DataObject) -> None:
    """Sampled pixels sit in exactly one tile core, the one at (py // S, px // S)."""
    grid, _ = gm
    cy = [grid.core_window(r, 0) for r in range(grid.rows)]
    cx = [grid.core_window(0, c) for c in range(grid.cols)]
    for _ in range(5):
        py = data.draw(st.integers(0, grid.height - 1))
        px = data.draw(st.integers(0, grid.width - 1))
        in_rows = [r for r, w in enumerate(cy) if w.y <= py < w.bottom]
        in_cols = [c for c, w in enumerate(cx) if w.x <= px < w.right]
        assert len(in_rows) == 1
        assert len(in_cols) == 1
        r, c = in_rows[0], in_cols[0]
        assert (r, c) == (py // grid.stride, px // grid.stride)
        core = grid.core_window(r, c)
        assert core.contains(Window(py, px, 1, 1))
        # the full tile contains its core, and the pixel
        tile = grid.tile_window(r, c)
        assert tile.contains(core)
        assert tile.contains(Window(py, px, 1, 1))
        # neighbouring cores do not contain the pixel
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < grid.rows and 0 <= cc < grid.cols:
                assert not grid.core_window(rr, cc).contains(Window(py, px, 1, 1))


def _check_cores_cover_image(gm: tuple[TileGrid, int]) -> None:
    grid, _ = gm
    first = grid.core_window(0, 0)
    last = grid.core_window(grid.rows - 1, grid.cols - 1)
    cover = first.union(last)
    assert (cover.y, cover.x) == (0, 0)
    assert cover.contains(grid.image_window())
    # not more than one stride of slack past the image
    assert cover.bottom - grid.height < grid.stride
    assert cover.right - grid.width < grid.stride


@FAST
@given(grids(max_side=400))
def test_2d_cores_partition_image(gm: tuple[TileGrid, int]) -> None:
    grid, _ = gm
    assume(grid.count <= 4000)
    hits = np.zeros((grid.height, grid.width), dtype=np.int32)
    img = grid.image_window()
    for r in range(grid.rows):
        for c in range(grid.cols):
            core = grid.core_window(r, c).intersection(img)
            hits[core.slices()] += 1
    assert np.all(hits == 1)


def _check_tiles_inside_padded_window(gm: tuple[TileGrid, int]) -> None:
    grid, _ = gm
    padded = grid.padded_window()
    assert padded.contains(grid.image_window())
    m = grid.margin
    assert (padded.y, padded.x) == (-m, -m)
    assert padded.bottom == (grid.rows - 1) * grid.stride - m + grid.tile
    assert padded.right == (grid.cols - 1) * grid.stride - m + grid.tile
    corners = {(0, 0), (0, grid.cols - 1), (grid.rows - 1, 0), (grid.rows - 1, grid.cols - 1)}
    rows = sorted({0, grid.rows // 2, grid.rows - 1})
    cols = sorted({0, grid.cols // 2, grid.cols - 1})
    for r, c in corners | {(r, c) for r in rows for c in cols}:
        tw = grid.tile_window(r, c)
        assert (tw.height, tw.width) == (grid.tile, grid.tile)
        assert padded.contains(tw)
    # per axis, all tiles (not just samples)
    for k, y in enumerate(_axis_origins(grid, 0)):
        assert padded.y <= y and y + grid.tile <= padded.bottom, k
    for k, x in enumerate(_axis_origins(grid, 1)):
        assert padded.x <= x and x + grid.tile <= padded.right, k


def _check_tile_origins_share_pooling_grid(gm: tuple[TileGrid, int]) -> None:
    grid, m = gm
    for axis in (0, 1):
        origins = _axis_origins(grid, axis)
        assert origins[0] == -grid.margin
        assert np.all((origins - origins[0]) % m == 0)
        assert np.all(np.diff(origins) == grid.stride)
        # origin(k) = k*S - M
        k = np.arange(len(origins))
        assert np.array_equal(origins, k * grid.stride - grid.margin)


def _check_tile_contains_core_with_margin(gm: tuple[TileGrid, int]) -> None:
    grid, _ = gm
    r, c = grid.rows - 1, grid.cols - 1
    tile, core = grid.tile_window(r, c), grid.core_window(r, c)
    assert tile.contains(core)
    assert core.y - tile.y == grid.margin
    assert core.x - tile.x == grid.margin
    assert tile.bottom - core.bottom == grid.overlap - grid.margin


@FAST
@given(grids())
def test_grid_invariants(gm: tuple[TileGrid, int]) -> None:
    """Multiples, count formula, core cover, margins, pooling alignment, padded window."""
    _check_stride_and_tile_are_multiples(gm)
    _check_count_formula(gm)
    _check_cores_cover_image(gm)
    _check_tiles_inside_padded_window(gm)
    _check_tile_origins_share_pooling_grid(gm)
    _check_tile_contains_core_with_margin(gm)


@FAST
@given(
    st.sampled_from(MULTIPLES),
    st.integers(1, 16),
    st.integers(0, 15),
    st.data(),
)
def test_image_smaller_than_tile(m: int, k: int, ov: int, data: st.DataObject) -> None:
    tile = m * k
    overlap = m * min(ov, k - 1)
    stride = tile - overlap
    h = data.draw(st.integers(1, stride))
    w = data.draw(st.integers(1, stride))
    grid = make_grid(h, w, tile, overlap, multiple=m)
    assert grid.count == 1
    assert (grid.rows, grid.cols) == (1, 1)
    assert grid.tile_window(0, 0).contains(grid.image_window())
    assert grid.core_window(0, 0).contains(grid.image_window())


def test_single_pixel_image() -> None:
    grid = make_grid(1, 1, 64, 0.25, multiple=16)
    assert grid.count == 1
    assert grid.overlap == 16
    assert grid.tile_window(0, 0) == Window(-8, -8, 64, 64)
    assert grid.padded_window() == Window(-8, -8, 64, 64)


def test_example_counts() -> None:
    grid = make_grid(1000, 700, 256, 64, multiple=32)
    assert grid.stride == 192
    assert (grid.rows, grid.cols) == (6, 4)
    assert grid.count == 24
    assert grid.tile_window(1, 2) == Window(192 - 32, 384 - 32, 256, 256)


# --------------------------------------------------------------------------------------------
# make_grid: overlap conversion and validation
# --------------------------------------------------------------------------------------------


@FAST
@given(
    st.sampled_from(MULTIPLES),
    st.integers(1, 32),
    st.floats(0.0, 1.0, exclude_max=True, allow_nan=False),
)
def test_fraction_overlap_rounds_to_multiple(m: int, k: int, f: float) -> None:
    tile = m * k
    try:
        grid = make_grid(100, 100, tile, f, multiple=m)
    except OptionError:
        # only legitimate when rounding to the multiple reaches the tile itself
        assert m * round(f * tile / m) >= tile
        return
    assert grid.overlap % m == 0
    assert abs(grid.overlap - f * tile) <= m / 2 + 1e-9
    assert 0 <= grid.overlap < tile


@FAST
@given(st.sampled_from(MULTIPLES), st.integers(1, 32), st.data())
def test_pixel_overlap_kept(m: int, k: int, data: st.DataObject) -> None:
    tile = m * k
    overlap = m * data.draw(st.integers(0, k - 1))
    grid = make_grid(10, 20, tile, overlap, multiple=m)
    assert grid.overlap == overlap
    assert grid.stride == tile - overlap
    assert (grid.height, grid.width, grid.tile) == (10, 20, tile)


@FAST
@given(st.sampled_from((2, 16, 32)), st.integers(1, 32), st.integers(1, 31))
def test_tile_not_multiple_raises(m: int, k: int, off: int) -> None:
    tile = m * k + off % m
    assume(tile % m)
    with pytest.raises(OptionError):
        make_grid(100, 100, tile, 0, multiple=m)


@pytest.mark.parametrize("tile, m", [(0, 1), (-16, 16), (8, 16), (48, 32)])
def test_tile_too_small_or_not_multiple_raises(tile: int, m: int) -> None:
    with pytest.raises(OptionError):
        make_grid(100, 100, tile, 0, multiple=m)


@FAST
@given(st.sampled_from(MULTIPLES), st.integers(1, 32), st.integers(0, 4))
def test_pixel_overlap_at_least_tile_raises(m: int, k: int, extra: int) -> None:
    tile = m * k
    with pytest.raises(OptionError):
        make_grid(100, 100, tile, tile + m * extra, multiple=m)


@pytest.mark.parametrize("overlap", [1.0, 1.5, -0.1, -1e-9, float("inf"), float("nan")])
def test_fraction_outside_unit_interval_raises(overlap: float) -> None:
    with pytest.raises(OptionError):
        make_grid(100, 100, 64, overlap, multiple=16)


@FAST
@given(st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not 0.0 <= f < 1.0))
def test_fraction_outside_unit_interval_raises_property(overlap: float) -> None:
    with pytest.raises(OptionError):
        make_grid(100, 100, 64, overlap, multiple=16)


@FAST
@given(st.sampled_from((2, 16, 32)), st.integers(2, 32), st.data())
def test_pixel_overlap_not_multiple_is_rounded_with_a_warning(
    m: int, k: int, data: st.DataObject
) -> None:
    """The README: overlaps are rounded to a multiple of the downsampling factor; pixels that
    change say so."""
    tile = m * k
    overlap = data.draw(st.integers(1, tile - 1).filter(lambda o: o % m != 0))
    rounded = m * round(overlap / m)
    assume(rounded < tile)
    with pytest.warns(TilerunWarning, match=f"--overlap {overlap} px rounded to {rounded} px"):
        grid = make_grid(100, 100, tile, overlap, multiple=m)
    assert grid.overlap == rounded
    assert abs(grid.overlap - overlap) <= m / 2
    assert grid.overlap_note is not None and f"{overlap} px rounded to {grid.overlap} px" \
        in grid.overlap_note


def test_a_fraction_that_rounds_to_no_overlap_warns() -> None:
    with pytest.warns(TilerunWarning, match="rounded to 0 px .* the tiles do not overlap"):
        grid = make_grid(100, 100, 64, 1 / 255, multiple=4)
    assert grid.overlap == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make_grid(100, 100, 64, 0.0, multiple=4).overlap == 0  # asked for: no warning
        assert make_grid(100, 100, 64, 0.25, multiple=4).overlap == 16


def test_a_fraction_rounded_is_said_and_an_exact_one_is_not() -> None:
    rounded = make_grid(300, 300, 256, 0.2, multiple=32)
    assert rounded.overlap == 64
    assert rounded.overlap_note == (
        "overlap 0.2 of the 256 px tile rounded to 64 px, a multiple of the model's "
        "downsampling factor 32, so tiles stay aligned with its pooling grid")
    assert make_grid(300, 300, 256, 0.25, multiple=32).overlap_note is None
    assert make_grid(300, 300, 256, 64, multiple=32).overlap_note is None


def test_negative_pixel_overlap_raises() -> None:
    with pytest.raises(OptionError):
        make_grid(100, 100, 64, -16, multiple=16)


@pytest.mark.parametrize("h, w", [(0, 10), (10, 0), (-1, 5)])
def test_empty_image_raises(h: int, w: int) -> None:
    with pytest.raises(OptionError):
        make_grid(h, w, 64, 0, multiple=16)


def test_bad_multiple_raises() -> None:
    with pytest.raises(OptionError):
        make_grid(100, 100, 64, 0, multiple=0)
