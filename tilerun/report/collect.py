"""Collecting the run report: what chunk tasks measure, and how it adds up at the end.

The engine asks a :class:`StatsPlan` (made once per run, shipped to workers with the job) to
measure; each chunk's measurements travel back to the scheduler inside its ``ChunkResult`` as
one small :class:`ChunkStats` (a few hundred numbers: sums and fixed-bin histograms, never
pixels), so the same code serves threads and Dask clusters. :func:`finish_report` adds them
up into the :class:`~tilerun.report.record.RunReport` stored with the output, and warns when
the input drifted from the training data.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from tilerun.classes.names import label_names, label_values
from tilerun.classes.probabilities import activation_for
from tilerun.report.drift import DRIFT_THRESHOLD, band_drift, drift_message, warn_drift
from tilerun.report.inputs import InputBins, InputStats, input_bins, observe_input
from tilerun.report.lattice import lattice
from tilerun.report.outputs import (
    LOW_CONFIDENCE,
    LOW_CONFIDENCE_SIGMOID,
    OutputStats,
    observe_output,
)
from tilerun.report.record import (
    SCHEMA,
    BandReport,
    ClassReport,
    OutputReport,
    RunReport,
    finite,
)
from tilerun.report.timing import timing_report

#: Internal switch: False runs without statistics (to measure their overhead).
ENABLED = True


@functools.cache
def worker_id() -> str:
    """This process, as ``host/pid``: model calls are timed per compute stage."""
    return f"{socket.gethostname()}/{os.getpid()}"


@dataclass(frozen=True)
class ChunkStats:
    """One chunk's measurements: its share of the input, its output, model calls drained."""

    input: InputStats | None = None
    output: OutputStats | None = None
    model_seconds: tuple[float, ...] = ()
    worker: str = ""


@dataclass(frozen=True)
class StatsPlan:
    """What to measure in a run: the input bins, the training statistics, the classes."""

    subject: str
    bins: InputBins
    band_names: tuple[str, ...]
    train_mean: tuple[float, ...] | None
    train_std: tuple[float, ...] | None
    classes: int
    class_names: tuple[str, ...]
    activation: str

    @classmethod
    def for_model(cls, subject: str, spec: Any, bands: int, dtype: np.dtype[Any],
                  classes: int, scaling: Any = None) -> StatsPlan:
        """From the model spec (``mean``/``std``, names, activation) and the input's bands;
        ``scaling``: the input scale/offset the run applies (statistics in physical values)."""
        mean, std = spec.mean, spec.std
        if mean is None or std is None or len(mean) != bands:
            mean = std = None
        names = tuple(spec.band_names) if spec.band_names and len(spec.band_names) == bands \
            else tuple(f"band {k + 1}" for k in range(bands))
        n = label_values(classes)
        class_names = label_names(spec.class_names, n)
        activation = activation_for(classes, spec.activation)
        return cls(subject, input_bins(mean, std, bands, np.dtype(dtype), scaling), names,
                   None if mean is None else tuple(float(v) for v in mean),
                   None if std is None else tuple(float(v) for v in std),
                   classes, class_names, activation)

    def observe_input(self, origin: tuple[int, int], pixels: np.ndarray,
                      valid: np.ndarray | None, mask: np.ndarray | None) -> ChunkStats:
        """A tiles task's input measurements (see :func:`observe_input`) on the lattice
        (:mod:`tilerun.report.lattice`; ``origin``: the image pixel of ``pixels[:, 0, 0]``),
        made in this process (the model calls it drains later are this process's)."""
        ys, xs = lattice(*origin)
        stats = observe_input(self.bins, pixels[:, ys, xs],
                              None if valid is None else valid[:, ys, xs],
                              None if mask is None else mask[ys, xs])
        return ChunkStats(stats, worker=worker_id())

    def observe_output(self, tiles: ChunkStats | None, origin: tuple[int, int],
                       logits: np.ndarray, valid: np.ndarray,
                       labels: np.ndarray | None) -> ChunkStats:
        """A write task's measurements: the chunk's own tiles' (if it ran any) plus its
        output (see :func:`observe_output`; ``origin``: the image pixel of the chunk's first)."""
        output = observe_output(logits, valid, labels, self.activation, origin)
        return replace(tiles, output=output) if tiles is not None else ChunkStats(output=output)


class Summary(Protocol):
    """The parts of a run summary the report needs."""

    @property
    def seconds(self) -> float: ...
    @property
    def pixels(self) -> int: ...
    @property
    def tiles_run(self) -> int: ...
    @property
    def tiles_skipped(self) -> int: ...
    @property
    def chunks_resumed(self) -> int: ...


def finish_report(plan: StatsPlan | None, results: Sequence[Any],
                  summary: Summary) -> dict[str, Any] | None:
    """Add up the ``stats`` of every chunk result into the run report (as stored, JSON-ready)
    and warn (:class:`~tilerun.report.drift.DriftWarning`) when a band drifted; None when
    the run measured nothing (``plan`` None)."""
    if plan is None:
        return None
    inputs, outputs = InputStats.empty(plan.bins), OutputStats.empty(label_values(plan.classes))
    durations: list[float] = []
    workers: set[str] = set()
    chunks = 0
    for result in results:
        stats: ChunkStats | None = getattr(result, "stats", None)
        if stats is None:
            continue
        chunks += 1
        if stats.input is not None:
            inputs = inputs + stats.input
        if stats.output is not None:
            outputs = outputs + stats.output
        if stats.model_seconds:
            durations.extend(stats.model_seconds)
            workers.add(stats.worker)
    bands = _bands(plan, inputs)
    report = RunReport(
        schema=SCHEMA, chunks=chunks, chunks_resumed=int(summary.chunks_resumed),
        drift_threshold=DRIFT_THRESHOLD, bands=bands, output=_output(plan, outputs),
        timing=timing_report(durations, len(workers), summary.seconds, summary.pixels,
                             summary.tiles_run, summary.tiles_skipped),
    )
    warn_drift(drift_message(plan.subject, bands))
    return report.to_dict()


def _bands(plan: StatsPlan, stats: InputStats) -> tuple[BandReport, ...]:
    means, stds = stats.mean(plan.bins.centre), stats.std()
    bands = []
    for b, name in enumerate(plan.band_names):
        mean, std = finite(means[b]), finite(stds[b])
        tm = plan.train_mean[b] if plan.train_mean else None
        ts = plan.train_std[b] if plan.train_std else None
        drift = None
        if mean is not None and std is not None and tm is not None and ts is not None:
            drift = band_drift(mean, std, tm, ts)
        hist = stats.hist[b]
        bands.append(BandReport(
            name=name, pixels=int(stats.count[b]), mean=mean, std=std,
            min=finite(stats.low[b]), max=finite(stats.high[b]), train_mean=tm, train_std=ts,
            mean_shift=drift.mean_shift if drift else None,
            std_ratio=drift.std_ratio if drift else None,
            drift=finite(drift.drift) if drift else None, drifted=bool(drift and drift.drifted),
            hist_lo=plan.bins.lo[b], hist_hi=plan.bins.hi[b],
            hist=tuple(int(v) for v in hist[1:-1]), below=int(hist[0]), above=int(hist[-1]),
        ))
    return tuple(bands)


def _output(plan: StatsPlan, stats: OutputStats) -> OutputReport:
    total = stats.pixels
    classes = tuple(
        ClassReport(name, int(n), int(n) / total if total else None)
        for name, n in zip(plan.class_names, stats.labels.tolist(), strict=True)
    )
    rule = (f"max class probability < {LOW_CONFIDENCE:g}" if plan.activation == "softmax"
            else f"some class probability within ({LOW_CONFIDENCE_SIGMOID:g}, "
                 f"{1 - LOW_CONFIDENCE_SIGMOID:g})")
    sampled = stats.sampled
    return OutputReport(
        pixels=total, activation=plan.activation, classes=classes,
        entropy_mean=stats.entropy_sum / sampled if sampled else None,
        entropy_hist=tuple(int(v) for v in stats.entropy_hist),
        low_confidence=stats.low / sampled if sampled else None, low_confidence_rule=rule,
        entropy_pixels=sampled,
    )
