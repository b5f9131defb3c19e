"""Property tests of Window and bounding_window (tilerun.geometry.window)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilerun.geometry import Window, bounding_window

FAST = settings(max_examples=100, deadline=None)

coords = st.integers(-50, 50)
sizes = st.integers(0, 40)
windows = st.builds(Window, coords, coords, sizes, sizes)
nonempty = st.builds(Window, coords, coords, st.integers(1, 40), st.integers(1, 40))


def _pixels(w: Window) -> set[tuple[int, int]]:
    return {(y, x) for y in range(w.y, w.bottom) for x in range(w.x, w.right)}


@FAST
@given(windows)
def test_basic_properties(w: Window) -> None:
    assert w.bottom == w.y + w.height
    assert w.right == w.x + w.width
    assert w.is_empty == (w.height == 0 or w.width == 0)
    assert w.size == w.height * w.width == len(_pixels(w))


def test_negative_extent_is_empty() -> None:
    w = Window(3, 4, -2, 5)
    assert w.is_empty
    assert w.size == 0


@FAST
@given(windows, windows)
def test_intersection_commutative(a: Window, b: Window) -> None:
    assert a.intersection(b) == b.intersection(a)
    assert a.intersects(b) == b.intersects(a)


@FAST
@given(windows, windows)
def test_intersection_is_pixel_set_intersection(a: Window, b: Window) -> None:
    inter = a.intersection(b)
    assert inter.height >= 0 and inter.width >= 0
    assert _pixels(inter) == _pixels(a) & _pixels(b)
    assert a.intersects(b) == bool(_pixels(a) & _pixels(b))
    if not inter.is_empty:
        assert a.contains(inter)
        assert b.contains(inter)


@FAST
@given(windows, windows, windows)
def test_intersection_associative(a: Window, b: Window, c: Window) -> None:
    left = a.intersection(b).intersection(c)
    right = a.intersection(b.intersection(c))
    assert _pixels(left) == _pixels(right)
    if not left.is_empty:
        assert left == right


@FAST
@given(nonempty)
def test_intersection_with_self_and_contains_self(a: Window) -> None:
    assert a.intersection(a) == a
    assert a.contains(a)
    assert a.union(a) == a
    assert a.intersects(a)


@FAST
@given(windows, windows)
def test_union_contains_both(a: Window, b: Window) -> None:
    u = a.union(b)
    assert u == b.union(a)
    assert u.contains(a)
    assert u.contains(b)
    assert _pixels(a) | _pixels(b) <= _pixels(u)
    # the bounding box is tight: it starts at one of the inputs' corners and ends at one too
    assert u.y == min(a.y, b.y) and u.x == min(a.x, b.x)
    assert u.bottom == max(a.bottom, b.bottom) and u.right == max(a.right, b.right)


@FAST
@given(windows, windows)
def test_contains_is_pixel_inclusion_for_nonempty(a: Window, b: Window) -> None:
    if not b.is_empty:
        assert a.contains(b) == (_pixels(b) <= _pixels(a))
    if a.contains(b) and b.contains(a):
        assert a == b


@FAST
@given(windows, windows, windows)
def test_contains_transitive(a: Window, b: Window, c: Window) -> None:
    if a.contains(b) and b.contains(c):
        assert a.contains(c)


@FAST
@given(nonempty, st.data())
def test_slices_with_origin_index_subarray(outer: Window, data: st.DataObject) -> None:
    """A window inside ``outer`` slices an array covering ``outer`` at the right place."""
    y = data.draw(st.integers(outer.y, outer.bottom))
    x = data.draw(st.integers(outer.x, outer.right))
    h = data.draw(st.integers(0, outer.bottom - y))
    w = data.draw(st.integers(0, outer.right - x))
    inner = Window(y, x, h, w)
    assert outer.contains(inner)
    # array whose value encodes the global coordinates of each pixel
    gy, gx = np.mgrid[outer.y : outer.bottom, outer.x : outer.right]
    arr = gy * 1000 + gx
    sub = arr[inner.slices(outer)]
    assert sub.shape == (h, w)
    ey, ex = np.mgrid[y : y + h, x : x + w]
    assert np.array_equal(sub, ey * 1000 + ex)


@FAST
@given(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))
def test_slices_without_origin(y: int, x: int, h: int, w: int) -> None:
    arr = np.arange(80 * 80).reshape(80, 80)
    win = Window(y, x, h, w)
    sy, sx = win.slices()
    assert (sy.start, sy.stop, sx.start, sx.stop) == (y, y + h, x, x + w)
    assert np.array_equal(arr[win.slices()], arr[y : y + h, x : x + w])
    # origin at (0, 0) is the same as no origin
    assert win.slices(Window(0, 0, 80, 80)) == win.slices()


@FAST
@given(nonempty, nonempty)
def test_slices_of_intersection_write_back(a: Window, b: Window) -> None:
    """Accumulating b into an array covering a through their intersection touches exactly it."""
    acc = np.zeros((a.height, a.width), dtype=np.int32)
    src = np.ones((b.height, b.width), dtype=np.int32)
    inter = a.intersection(b)
    if not inter.is_empty:
        acc[inter.slices(a)] += src[inter.slices(b)]
    assert int(acc.sum()) == inter.size
    ys, xs = np.nonzero(acc)
    got = {(int(yy) + a.y, int(xx) + a.x) for yy, xx in zip(ys, xs, strict=True)}
    assert got == _pixels(a) & _pixels(b)


@FAST
@given(st.lists(windows, min_size=1, max_size=8))
def test_bounding_window(ws: list[Window]) -> None:
    box = bounding_window(ws)
    for w in ws:
        assert box.contains(w)
    assert box.y == min(w.y for w in ws)
    assert box.x == min(w.x for w in ws)
    assert box.bottom == max(w.bottom for w in ws)
    assert box.right == max(w.right for w in ws)


def test_bounding_window_empty_list_raises() -> None:
    with pytest.raises(ValueError):
        bounding_window([])


def test_window_is_frozen_and_ordered() -> None:
    w = Window(1, 2, 3, 4)
    with pytest.raises(AttributeError):
        w.y = 5  # type: ignore[misc]
    assert sorted([Window(2, 0, 1, 1), Window(1, 5, 1, 1)])[0] == Window(1, 5, 1, 1)
    assert hash(w) == hash(Window(1, 2, 3, 4))
