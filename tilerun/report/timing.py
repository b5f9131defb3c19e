"""Timing of a run: model-call latency, how busy the model was, throughput.

Every model call's duration is measured by the compute stage (host time around the call on a
CPU; CUDA events around it on a GPU), collected by the chunk tasks and summed here:

* ``latency_p50_ms``, ``latency_p99_ms``: the 50th and 99th percentiles of the call durations
  (numpy's linear interpolation between order statistics), in ms; calls may be short batches;
* ``model_busy = Σ durations / (wall seconds × devices)``, ``devices`` the compute stages that
  reported calls (one per process and device: one for a threaded run, one per Dask worker);
* ``mpx_per_s = pixels / wall seconds / 10⁶`` (output pixels, nodata included).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tilerun.report.record import TimingReport, finite


def timing_report(durations: Sequence[float], devices: int, seconds: float, pixels: int,
                  tiles_run: int, tiles_skipped: int) -> TimingReport:
    """The :class:`TimingReport` of a run (formulas in the module docstring)."""
    calls = np.asarray(durations, np.float64)
    p50 = p99 = None
    if calls.size:
        p50, p99 = (float(v) * 1e3 for v in np.percentile(calls, [50, 99]))
    model = float(calls.sum())
    busy = model / (seconds * max(devices, 1)) if seconds > 0 and calls.size else None
    rate = pixels / seconds / 1e6 if seconds > 0 else None
    return TimingReport(
        seconds=float(seconds), batches=int(calls.size), latency_p50_ms=p50, latency_p99_ms=p99,
        model_seconds=model, model_busy=busy, devices=int(devices),
        mpx_per_s=finite(rate) if rate is not None else None, tiles_run=int(tiles_run),
        tiles_skipped=int(tiles_skipped),
    )
