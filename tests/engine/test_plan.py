"""Property tests of chunk ownership and partial-sum routing (tilerun.engine.plan)."""

from __future__ import annotations

import functools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tilerun.blending import Blend
from tilerun.engine.plan import ChunkPlan, plan_axis
from tilerun.geometry import TileGrid, Window, make_grid

FAST = settings(max_examples=100, deadline=None)


@st.composite
def plans(draw: st.DrawFn) -> ChunkPlan:
    m = draw(st.sampled_from((1, 2, 16, 32)))
    tile = m * draw(st.integers(1, max(1, 128 // m)))
    overlap = m * draw(st.integers(0, tile // m - 1))
    # at most 24 tiles per axis so the brute-force checks stay fast
    limit = min(600, 24 * (tile - overlap))
    height = draw(st.integers(1, limit))
    width = draw(st.integers(1, limit))
    grid = make_grid(height, width, tile, overlap, multiple=m)
    stride = grid.stride
    chunk = draw(
        st.one_of(
            st.integers(1, max(1, stride - 1)),  # smaller than the stride (chunks owning nothing)
            st.integers(1, 700),
            st.integers(max(height, width), max(height, width) + 200),  # larger than the image
            st.sampled_from([stride, tile, 2 * stride, 64, 256]),
        )
    )
    # keep the number of chunks (and so the test) small
    chunk = max(chunk, math.ceil(max(height, width) / 24))
    blend = Blend(draw(st.sampled_from(["gaussian", "crop"])))
    return ChunkPlan(grid, blend, chunk)


@functools.lru_cache(maxsize=256)
def _support_cached(grid: TileGrid, blend: Blend) -> tuple[int, int]:
    return blend.support(grid)


def _support(plan: ChunkPlan) -> tuple[int, int]:
    return _support_cached(plan.grid, plan.blend)


def _support_window(plan: ChunkPlan, r: int, c: int) -> Window:
    """The tile's non-zero-weight region, clipped to the image."""
    s0, s1 = _support(plan)
    tw = plan.grid.tile_window(r, c)
    support = Window(tw.y + s0, tw.x + s0, s1 - s0, s1 - s0)
    return support.intersection(plan.grid.image_window())


def _owners(plan: ChunkPlan) -> dict[tuple[int, int], list[tuple[int, int]]]:
    owners: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, j in plan.chunks():
        for t in plan.owned_tiles(i, j):
            owners.setdefault(t, []).append((i, j))
    return owners


def _check_chunks_tile_the_image(plan: ChunkPlan) -> None:
    grid = plan.grid
    rows, cols = plan.shape
    assert rows == math.ceil(grid.height / plan.chunk)
    assert cols == math.ceil(grid.width / plan.chunk)
    assert plan.chunks() == sorted(plan.chunks())
    assert len(plan.chunks()) == rows * cols
    area = 0
    for i, j in plan.chunks():
        w = plan.chunk_window(i, j)
        assert not w.is_empty
        assert grid.image_window().contains(w)
        area += w.size
    assert area == grid.height * grid.width
    # the last chunk reaches the far corner
    last = plan.chunk_window(rows - 1, cols - 1)
    assert (last.bottom, last.right) == (grid.height, grid.width)


def _check_every_tile_owned_exactly_once(plan: ChunkPlan) -> None:
    grid = plan.grid
    owners = _owners(plan)
    assert set(owners) == {(r, c) for r in range(grid.rows) for c in range(grid.cols)}
    assert all(len(v) == 1 for v in owners.values())
    assert plan.tiles_planned == grid.count


def _check_owner_holds_first_support_pixel(plan: ChunkPlan) -> None:
    for (r, c), [(i, j)] in _owners(plan).items():
        sw = _support_window(plan, r, c)
        assert not sw.is_empty
        assert plan.chunk_window(i, j).contains(Window(sw.y, sw.x, 1, 1))


@FAST
@given(plans())
def test_sources_cover_every_intersecting_tile(plan: ChunkPlan) -> None:
    """Every tile whose clipped support meets a chunk is owned by one of its sources."""
    grid = plan.grid
    owners = _owners(plan)
    tiles = [(r, c) for r in range(grid.rows) for c in range(grid.cols)]
    sws = [_support_window(plan, r, c) for r, c in tiles]
    y0 = np.array([w.y for w in sws])
    y1 = np.array([w.bottom for w in sws])
    x0 = np.array([w.x for w in sws])
    x1 = np.array([w.right for w in sws])
    assert np.all(y1 > y0) and np.all(x1 > x0)
    owner_i = np.array([owners[t][0][0] for t in tiles])
    owner_j = np.array([owners[t][0][1] for t in tiles])
    for i, j in plan.chunks():
        cw = plan.chunk_window(i, j)
        hit = (y0 < cw.bottom) & (cw.y < y1) & (x0 < cw.right) & (cw.x < x1)
        needed = set(zip(owner_i[hit].tolist(), owner_j[hit].tolist(), strict=True))
        sources = set(plan.sources(i, j))
        assert needed, f"chunk {(i, j)} receives no tile"
        assert needed <= sources, (i, j, needed - sources)
        # and no useless source: each source owns a tile whose support reaches the chunk
        assert sources <= needed, (i, j, sources - needed)


def _check_partials_flow_forward(plan: ChunkPlan) -> None:
    for i, j in plan.chunks():
        for a, b in plan.sources(i, j):
            assert a <= i and b <= j
            assert plan.owned_tiles(a, b)
        for a, b in plan.targets(i, j):
            assert a >= i and b >= j


def _check_targets_and_sources_consistent(plan: ChunkPlan) -> None:
    rows, cols = plan.shape
    chunks = plan.chunks()
    forward = set()
    backward = set()
    for i, j in chunks:
        targets = plan.targets(i, j)
        assert len(set(targets)) == len(targets)
        assert targets == sorted(targets)
        for a, b in targets:
            assert 0 <= a < rows and 0 <= b < cols
            forward.add(((i, j), (a, b)))
        sources = plan.sources(i, j)
        assert len(set(sources)) == len(sources)
        backward.update(((a, b), (i, j)) for a, b in sources)
        if plan.owned_tiles(i, j):
            # a chunk's own first tile starts its support inside it, so it is its own target
            assert (i, j) in targets
        else:
            assert targets == []
    # (a, b) in sources(i, j)  <=>  (i, j) in targets(a, b)
    assert forward == backward
    # every chunk is written from at least one partial
    assert {dst for _, dst in forward} == set(chunks)


def _check_partial_window_inside_image_and_read(plan: ChunkPlan) -> None:
    image = plan.grid.image_window()
    for i, j in plan.chunks():
        if not plan.owned_tiles(i, j):
            continue
        pw, rw = plan.partial_window(i, j), plan.read_window(i, j)
        assert not pw.is_empty
        assert image.contains(pw)
        assert rw.contains(pw)
        # the partial is exactly the union of the owned tiles' clipped supports
        supports = [_support_window(plan, r, c) for r, c in plan.owned_tiles(i, j)]
        box = supports[0]
        for s in supports[1:]:
            box = box.union(s)
        assert pw == box
        # targets are exactly the chunks the partial meets
        z = plan.chunk
        met = [
            (a, b)
            for a in range(pw.y // z, (pw.bottom - 1) // z + 1)
            for b in range(pw.x // z, (pw.right - 1) // z + 1)
        ]
        assert all(plan.chunk_window(*t).intersects(pw) for t in met)
        assert plan.targets(i, j) == met


def _check_read_window_contains_owned_tiles(plan: ChunkPlan) -> None:
    grid = plan.grid
    padded = grid.padded_window()
    for i, j in plan.chunks():
        owned = plan.owned_tiles(i, j)
        if not owned:
            continue
        rw = plan.read_window(i, j)
        windows = [grid.tile_window(r, c) for r, c in owned]
        box = windows[0]
        for w in windows[1:]:
            box = box.union(w)
            assert rw.contains(w)
        assert rw.contains(windows[0])
        assert rw == box  # tight: nothing read that no tile needs
        assert padded.contains(rw)


def _check_write_depends_on_bounded_number_of_earlier_chunks(plan: ChunkPlan) -> None:
    """A write needs at most ceil(T/Z) + 1 chunks per axis (its own and those before it)."""
    reach = math.ceil(plan.grid.tile / plan.chunk) + 1
    for i, j in plan.chunks():
        srcs = plan.sources(i, j)
        assert len({a for a, _ in srcs}) <= reach
        assert len({b for _, b in srcs}) <= reach
        for a, b in srcs:
            assert i - a < reach and j - b < reach


def _check_owned_tiles_contiguous_and_row_major(plan: ChunkPlan) -> None:
    """Owned tile ranges per axis are contiguous and increase with the chunk index."""
    for axis in (plan.ys, plan.xs):
        previous_end = 0
        for c in range(axis.chunks):
            k0, k1 = axis.owned[c]
            if k0 == k1:
                continue
            assert k0 == previous_end
            previous_end = k1
        n = plan.grid.rows if axis is plan.ys else plan.grid.cols
        assert previous_end == n


@FAST
@given(plans())
def test_chunk_larger_than_image_is_single_task(plan: ChunkPlan) -> None:
    grid = plan.grid
    big = ChunkPlan(grid, plan.blend, max(grid.height, grid.width) + plan.chunk)
    assert big.shape == (1, 1)
    assert len(big.owned_tiles(0, 0)) == grid.count
    assert big.sources(0, 0) == [(0, 0)]
    assert big.targets(0, 0) == [(0, 0)]
    assert big.partial_window(0, 0) == grid.image_window()
    assert big.read_window(0, 0) == grid.padded_window()


@FAST
@given(plans())
def test_ownership(plan: ChunkPlan) -> None:
    """Every tile is owned by exactly one chunk: the one holding its first support pixel."""
    _check_every_tile_owned_exactly_once(plan)
    _check_owner_holds_first_support_pixel(plan)
    _check_owned_tiles_contiguous_and_row_major(plan)
    _check_chunks_tile_the_image(plan)


@FAST
@given(plans())
def test_routing(plan: ChunkPlan) -> None:
    """Partials flow forward; sources and targets describe the same relation."""
    _check_partials_flow_forward(plan)
    _check_targets_and_sources_consistent(plan)
    _check_write_depends_on_bounded_number_of_earlier_chunks(plan)


@FAST
@given(plans())
def test_windows_of_chunks(plan: ChunkPlan) -> None:
    """Partial and read windows are tight and nested as documented."""
    _check_partial_window_inside_image_and_read(plan)
    _check_read_window_contains_owned_tiles(plan)


def test_crop_plan_example() -> None:
    # T=64, O=16 (M=8), S=48; crop support is the core [8, 56) of each tile.
    grid = make_grid(200, 100, 64, 16, multiple=16)
    plan = ChunkPlan(grid, Blend("crop"), 50)
    assert plan.shape == (4, 2)
    assert (grid.rows, grid.cols) == (5, 3)
    # core starts 0, 48, 96, 144, 192 -> owners 0, 0, 1, 2, 3
    assert plan.ys.owned == ((0, 2), (2, 3), (3, 4), (4, 5))
    assert plan.ys.partial == ((0, 96), (96, 144), (144, 192), (192, 200))
    assert plan.ys.targets(0) == (0, 1)
    assert plan.ys.sources(1) == (0, 1)
    assert plan.tiles_planned == 15


def test_small_chunks_leave_some_chunks_without_tiles() -> None:
    grid = make_grid(100, 100, 32, 0, multiple=16)
    ax = plan_axis(100, 10, grid, Blend("gaussian").support(grid))
    owned = [ax.owned[c] for c in range(ax.chunks)]
    assert owned.count((0, 0)) == ax.chunks - grid.rows
    # each chunk without tiles still receives the partial of the chunk that covers it
    for c in range(ax.chunks):
        assert ax.sources(c), c
