"""Property tests of mirror reflection (tilerun.geometry.grid.reflect_index): the index map
behind the mirror padding at image borders, checked against ``numpy.pad(mode="reflect")``."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tilerun.geometry import reflect_index

FAST = settings(max_examples=100, deadline=None)


@FAST
@given(st.integers(2, 200), st.data())
def test_reflect_matches_numpy_pad(length: int, data: st.DataObject) -> None:
    before = data.draw(st.integers(0, length - 2))
    after = data.draw(st.integers(0, length - 2))
    expected = np.pad(np.arange(length), (before, after), mode="reflect")
    positions = np.arange(-before, length + after)
    assert np.array_equal(reflect_index(positions, length), expected)


@FAST
@given(st.integers(2, 50), st.integers(0, 400), st.integers(0, 400))
def test_reflect_matches_numpy_pad_wide(length: int, before: int, after: int) -> None:
    """numpy also reflects repeatedly for pads wider than the array."""
    expected = np.pad(np.arange(length), (before, after), mode="reflect")
    positions = np.arange(-before, length + after)
    assert np.array_equal(reflect_index(positions, length), expected)


@FAST
@given(st.integers(1, 500), st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=50))
def test_reflect_in_range_and_symmetric(length: int, idx: list[int]) -> None:
    index = np.array(idx, dtype=np.int64)
    out = reflect_index(index, length)
    assert out.shape == index.shape
    assert np.all((out >= 0) & (out < length))
    assert np.array_equal(reflect_index(-index, length), out)
    # identity inside the axis
    inside = (index >= 0) & (index < length)
    assert np.array_equal(out[inside], index[inside])
    if length > 1:
        # periodic with period 2 * (length - 1)
        period = 2 * (length - 1)
        assert np.array_equal(reflect_index(index + period, length), out)
        # mirror about the far edge: L-1+d and L-1-d map to the same pixel
        d = np.abs(index) % period
        assert np.array_equal(
            reflect_index(length - 1 + d, length), reflect_index(length - 1 - d, length)
        )


@FAST
@given(st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=50))
def test_reflect_length_one_maps_to_zero(idx: list[int]) -> None:
    out = reflect_index(np.array(idx), 1)
    assert np.all(out == 0)
    assert out.shape == (len(idx),)


def test_reflect_examples() -> None:
    got = reflect_index(np.array([-3, -2, -1, 0, 1, 2, 3, 4, 5]), 4)
    assert got.tolist() == [3, 2, 1, 0, 1, 2, 3, 2, 1]
    assert reflect_index(np.array([[-1, 5], [2, 0]]), 3).tolist() == [[1, 1], [2, 0]]
