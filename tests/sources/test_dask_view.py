from __future__ import annotations

import numpy as np

from tilerun.sources import ArraySource

READS: list[object] = []


class CountingSource(ArraySource):
    def read(self, window):
        READS.append(window)
        return super().read(window)


def test_to_dask_is_lazy_and_equal():
    data = np.random.default_rng(0).integers(0, 255, size=(3, 70, 90), dtype=np.uint8)
    READS.clear()
    arr = CountingSource(data).to_dask(chunks=32)
    assert arr.shape == data.shape and arr.dtype == data.dtype
    assert READS == []  # building the dask array reads nothing
    np.testing.assert_array_equal(arr[:, 40:50, 10:20].compute(), data[:, 40:50, 10:20])
    assert 0 < len(READS) <= 2
    np.testing.assert_array_equal(arr.compute(), data)
