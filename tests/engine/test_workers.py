"""A local cluster's worker count is capped to the cores and memory (tilerun.engine.workers)."""

from __future__ import annotations

import warnings

import pytest

from tilerun.engine.options import PredictOptions
from tilerun.engine.workers import WORKER_BASE_BYTES, fit_workers
from tilerun.errors import OptionError, TilerunWarning

GIB = 2**30


def test_workers_beyond_the_cores_are_capped_with_the_figures():
    with pytest.warns(TilerunWarning, match=r"--workers 64 .* \(2 CPU core\(s\), 16 GiB "
                      r"available, at least 512 MiB per worker\): using 2 worker\(s\)"):
        fitted = fit_workers(PredictOptions(workers=64), cores=2, available=16 * GIB)
    assert fitted.workers == 2


def test_memory_caps_workers_below_the_cores():
    with pytest.warns(TilerunWarning, match="using 3 worker"):
        fitted = fit_workers(PredictOptions(workers=32), cores=32,
                             available=3 * WORKER_BASE_BYTES + 1)
    assert fitted.workers == 3


def test_workers_that_fit_and_remote_clusters_are_left_alone():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_workers(PredictOptions(workers=2), cores=2, available=16 * GIB).workers == 2
        remote = PredictOptions(workers=64, scheduler="tcp://10.0.0.1:8786")
        assert fit_workers(remote, cores=2, available=GIB).workers == 64
        assert fit_workers(PredictOptions(), cores=1, available=GIB).workers is None


def test_no_memory_for_one_worker_is_refused_with_the_figure():
    with pytest.raises(OptionError, match=r"--workers: each worker process needs at least "
                       r"512 MiB .* 100 MiB available"):
        fit_workers(PredictOptions(workers=4), cores=4, available=100 * 2**20)
