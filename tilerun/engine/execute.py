"""The run: check everything, create the output, execute the chunk graph, finalise.

(The module is ``execute``, not ``run``, so that ``tilerun.engine.run`` is always the function.)

All validation happens before the output store is created, so bad input leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import dask
import dask.threaded
import xarray as xr
from dask.callbacks import Callback
from torch import nn

from tilerun.engine.cluster import client_for, run_on_cluster
from tilerun.engine.decisions import (
    output_layout,
    pyramid_request,
    run_attributes,
)
from tilerun.engine.feeder import DeviceFeeder
from tilerun.engine.graph import WRITE, Job, build_graph, with_stats
from tilerun.engine.memory import fewer_gc_passes, tune_allocator
from tilerun.engine.opening import Opened, open_checked
from tilerun.engine.options import PredictOptions
from tilerun.engine.partial import ChunkResult
from tilerun.engine.prepared import PreparedModel
from tilerun.engine.workers import fit_workers
from tilerun.errors import InputError, OutputError
from tilerun.extras import store_errors
from tilerun.models import ModelHandle
from tilerun.phases import PhaseCallback, clock, phase
from tilerun.report.collect import finish_report
from tilerun.sinks import Sink, completed_output
from tilerun.sinks.layout.job_record import (
    changed_file,
    differences,
    file_stats,
    input_digest,
    same_job,
    start_input_digest,
)
from tilerun.sinks.layout.store import open_target
from tilerun.sinks.objects import store_problem


@dataclass(frozen=True)
class RunSummary:
    """What a finished run reports (also stored in the output's ``tilerun`` attributes)."""

    output: str
    tiles_run: int
    tiles_minimum: int
    tiles_skipped: int
    chunks: int
    chunks_resumed: int
    pixels: int
    valid_pixels: int
    seconds: float
    device: str
    #: the backend that ran the model, and the seconds spent converting, loading and checking
    #: it before any work (see :mod:`tilerun.backends`)
    backend: str = "torch"
    backend_seconds: float = 0.0
    #: forward calls by batch size (this process's compute stage; empty on a cluster)
    batches: dict[int, int] = field(default_factory=dict)
    #: ``--resume`` found the output complete and did nothing (the rest is what it recorded)
    already_complete: bool = False
    #: the run report (input statistics and drift, output statistics, timing), JSON-ready;
    #: see :mod:`tilerun.report`
    report: dict[str, Any] | None = None
    #: ``seconds`` is the work alone; these are the whole call's: wall seconds, and seconds per
    #: phase (opening, model, backend, planning, work, finishing, other), which add up to it,
    #: with a word on some (the backend's ``cached`` or ``raced``); see :mod:`tilerun.phases`
    wall_seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    phase_notes: dict[str, str] = field(default_factory=dict)

    @property
    def recompute_ratio(self) -> float:
        """Tiles run ÷ tiles that had to run (1.0: nothing computed twice)."""
        return self.tiles_run / self.tiles_minimum if self.tiles_minimum else 1.0

    @property
    def skipped_fraction(self) -> float:
        """Share of the grid's tiles not run because no tissue lay under them."""
        return self.tiles_skipped / (self.tiles_minimum + self.tiles_skipped)

    @property
    def pixels_per_second(self) -> float:
        return self.pixels / self.seconds if self.seconds > 0 else float("inf")


ChunkCallback = Callable[[ChunkResult], None]


def prepare(
    source: Any, model: Any, out: str | Path, options: PredictOptions, sink: Sink | None = None,
    prepared: PreparedModel | None = None,
) -> Job:
    """Open and check source and model, plan the chunks and open the sink (by default a Zarr
    store at ``out``): every check runs before the sink creates anything. ``prepared``: a
    job's model, with its runners and compute stages (see :mod:`tilerun.engine.prepared`)."""
    opened = open_checked(source, model, out, options, sink, prepared=prepared)
    runner, sink = opened.runner, opened.sink
    digest = start_input_digest(opened.source)  # read while the backend is chosen
    if opened.grid.overlap_note:
        logging.getLogger("tilerun").info("%s: %s", opened.model.name, opened.grid.overlap_note)
    weights = opened.blend.weights(opened.grid)
    compute: DeviceFeeder
    with phase("backend"):
        if prepared is None:
            runner.select(opened.example, options.batch_size)
            compute = DeviceFeeder(runner, opened.normalize, weights, options.batch_size)
        else:
            prepared.selected(runner, opened.example, options.batch_size)
            compute = prepared.feeder(runner, opened.normalize, weights, options.batch_size)
    with phase("planning"):
        return _planned(opened, options, compute, digest)


def _planned(opened: Opened, options: PredictOptions, compute: DeviceFeeder,
             digest: Any) -> Job:
    """The job of a run whose backend is chosen, its sink opened."""
    runner, sink = opened.runner, opened.sink
    layout = output_layout(options, opened.source, opened.model.spec, opened.classes, sink)
    variables = layout.variables
    job = Job(
        source=opened.source,
        plan=opened.chunk_plan(options),
        runner=runner,
        compute=compute,
        classes=opened.classes,
        sink=sink,
        labels="labels" in variables,
        logits="logits" in variables,
        probabilities=layout.probability_activation if "probabilities" in variables else None,
    )
    attrs = run_attributes(opened.source, job.plan, opened.classes, opened.model, options,
                           digest.result())
    sink.open(layout, opened.source.georef, attrs, options.resume)
    return job


def _same_job(
    source: Any, model: Any, out: str | Path, options: PredictOptions, sink: Sink | None,
    finished: dict[str, Any], prepared: PreparedModel | None = None,
) -> bool:
    """Whether the complete output at ``out`` (its record ``finished``) is this job's, by
    fingerprint: a ``--resume`` on it has nothing to do. Another job's is refused with what
    differs, unless ``--overwrite`` asks to compute it again (False)."""
    opened = open_checked(source, model, out, options, sink, check_sink=False,
                          prepared=prepared)
    attrs = run_attributes(opened.source, opened.chunk_plan(options), opened.classes,
                           opened.model, options, input_digest(opened.source))
    if same_job(finished, attrs):
        return True
    if options.overwrite:
        return False
    raise OutputError(out, f"is complete, but made by a different job "
                      f"({differences(finished, attrs)}); pass --overwrite with --resume to "
                      "compute it again, or choose another output")


def run(
    source: Any,
    model: str | Path | nn.Module | ModelHandle,
    out: str | Path,
    options: PredictOptions | None = None,
    on_chunk: ChunkCallback | None = None,
    on_start: Callable[[int], None] | None = None,
    client: Any = None,
    sink: Sink | None = None,
    on_phase: PhaseCallback | None = None,
    prepared: PreparedModel | None = None,
) -> RunSummary:
    """Predict ``source`` with ``model`` into the Zarr store ``out``; returns the summary.

    ``on_start(n_chunks)`` is called once the work is planned, ``on_chunk(result)`` after each
    chunk is written (both in the calling thread), e.g. to drive a progress bar;
    ``on_phase(name, label)`` as each phase before and after the work begins (see
    :mod:`tilerun.phases`). ``client``: a ``distributed.Client`` to run the chunk tasks
    on (see :mod:`tilerun.engine.cluster`). ``sink``: where the chunks go (default: a
    :class:`~tilerun.sinks.ZarrSink` at ``out``). ``prepared``: a job's model, compute stage,
    threads and client, shared by its scenes (:mod:`tilerun.engine.prepared`).
    """
    with clock(on_phase) as recorder:
        summary = _run(source, model, out, options, on_chunk, on_start, client, sink, prepared)
        phases = recorder.breakdown()
        return replace(summary, wall_seconds=sum(phases.values()), phases=phases,
                       phase_notes=dict(recorder.notes))


def _run(
    source: Any,
    model: str | Path | nn.Module | ModelHandle,
    out: str | Path,
    options: PredictOptions | None,
    on_chunk: ChunkCallback | None,
    on_start: Callable[[int], None] | None,
    client: Any,
    sink: Sink | None,
    prepared: PreparedModel | None,
) -> RunSummary:
    options = options or PredictOptions()
    finished = completed_output(out) if options.resume else None
    if finished is not None and _same_job(source, model, out, options, sink, finished,
                                          prepared):
        return _finished_summary(out, finished)
    options = fit_workers(options) if client is None else options
    tune_allocator()
    job = prepare(source, model, out, options, sink, prepared)
    job = with_stats(job)
    files = file_stats(job.source)
    shared = prepared is not None
    client = prepared.client if prepared is not None and client is None else client
    try:
        with phase("planning"):
            done = job.sink.completed()
            graph, writes = build_graph(job, uuid.uuid4().hex[:12], done)
        if on_start is not None:
            on_start(len(writes))
        start = time.perf_counter()
        with phase("work"), fewer_gc_passes(), _output_failures(out), \
                _input_failures(job.sink):
            results = _execute(graph, writes, options, on_chunk, client,
                               prepared.executor if prepared is not None else None)
        seconds = time.perf_counter() - start
        _check_unchanged(job.source, files)
    except BaseException:
        job.sink.abort()
        raise
    finally:
        if not shared:  # a job's compute stage serves its other scenes; the job closes it
            job.compute.close()
    summary = _summary(out, job, results, len(done), seconds, shared)
    with phase("finishing"):
        summary = replace(summary, report=finish_report(job.stats, results, summary))
        pyramids = pyramid_request(options, job)
        record = {k: v for k, v in asdict(summary).items() if k not in UNRECORDED}
        with _output_failures(out):
            job.sink.finalize(record, pyramids)
    return summary


#: summary fields not stored in the output's record: where it is, and the whole call's
#: timings (known only once the store is finished)
UNRECORDED = frozenset({"output", "already_complete", "wall_seconds", "phases", "phase_notes"})


def _check_unchanged(source: Any, files: dict[str, tuple[int, int]]) -> None:
    """Refuse to publish an output whose input file was rewritten while the run read it: its
    chunks may mix the old and the new pixels."""
    changed = changed_file(files)
    if changed is not None:
        raise InputError(source.name, f"{changed} changed while the run read it (its size or "
                         "time stamp moved), so the chunks may mix old and new pixels; nothing "
                         "was published: run the command again once the input is final")


def _summary(out: str | Path, job: Job, results: list[ChunkResult], resumed: int,
             seconds: float, shared: bool) -> RunSummary:
    """The run's summary, before its report. ``shared``: a job's compute stage, which counts
    the model calls of every scene, so this scene's are counted from its chunks."""
    return RunSummary(
        output=str(out),
        # Threads share one compute stage, which counts real model calls; on a cluster each
        # worker has its own copy, and a job's scenes share one: count the tiles written.
        tiles_run=(0 if shared else job.compute.tiles_run) or sum(r.tiles for r in results),
        tiles_minimum=job.plan.grid.count - len(job.plan.skip),
        tiles_skipped=len(job.plan.skip),
        chunks=len(results),
        chunks_resumed=resumed,
        pixels=sum(r.pixels for r in results),
        valid_pixels=sum(r.valid_pixels for r in results),
        seconds=seconds,
        device=str(job.runner.device),
        backend=job.runner.backend_used,
        backend_seconds=job.runner.selection.seconds if job.runner.selection else 0.0,
        batches={} if shared else dict(sorted(job.compute.batch_sizes.items())),
    )


#: Write failures that are the output's, not the program's: a full disk, a quota, a file
#: system turned read-only.
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


@contextlib.contextmanager
def _output_failures(out: str | Path) -> Iterator[None]:
    """Turn a full disk (or quota, or read-only file system) into one line that says what is
    kept: the unfinished store, whose written chunks a ``--resume`` run keeps."""
    try:
        yield
    except OSError as err:
        if err.errno not in OUTPUT_ERRNOS:
            raise
        raise OutputError(out, f"{err.strerror or err} while writing; the unfinished store "
                          f"{out}.partial is kept (an existing output is untouched): make room, "
                          "then run again with --resume") from err
    except store_errors() as err:  # object storage: unreachable, throttled, credentials expired
        problem = store_problem(err, str(out))
        raise OutputError(out, f"the object store failed while writing ({problem}); "
                          "the chunks written so far are kept: run again with --resume") from err


@contextlib.contextmanager
def _input_failures(sink: Sink) -> Iterator[None]:
    """An input that fails to read mid-run (a VRT's missing source, a truncated file): say,
    on the same line, what was written and how to continue."""
    try:
        yield
    except InputError as err:
        where = sink.unfinished()
        unreadable: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError,
                                                        *store_errors())
        try:
            written = len(sink.completed())
        except unreadable:
            written = 0
        kept = (f"the {written} chunk(s) written before it are kept in {where}" if written
                else f"no chunk was written yet ({where} is unfinished)")
        raise type(err)(err.subject, f"{err.problem}; {kept}: after a passing failure run the "
                        "same command with --resume (it refuses an input whose files changed); "
                        "after fixing the input run it again without --resume") from err


def _finished_summary(out: str | Path, attrs: dict[str, Any]) -> RunSummary:
    """The summary a complete output recorded (``--resume`` on it does nothing)."""
    known = {f.name for f in fields(RunSummary)} - {"output", "already_complete"}
    recorded = {k: v for k, v in attrs.items() if k in known}
    recorded["batches"] = {int(k): int(v) for k, v in (recorded.get("batches") or {}).items()}
    try:
        return RunSummary(output=str(out), already_complete=True, **recorded)
    except TypeError as err:
        raise OutputError(out, f"is complete but its run record is unreadable ({err})") from err


def _execute(
    graph: dict[Any, Any],
    keys: list[Any],
    options: PredictOptions,
    on_chunk: ChunkCallback | None,
    client: Any = None,
    pool: Executor | None = None,
) -> list[ChunkResult]:
    report = on_chunk or (lambda _: None)
    if client is not None or options.distributed:
        with client_for(options, client) as active:
            return run_on_cluster(active, graph, keys, report)

    def posttask(key: Any, result: Any, *_: Any) -> None:
        if isinstance(key, tuple) and key[0] == WRITE:
            report(result)

    with Callback(posttask=posttask):
        if options.scheduler == "sync":
            results = dask.get(graph, keys)
        else:
            results = dask.threaded.get(graph, keys, num_workers=options.thread_count, pool=pool)
    return list(results)


def predict(
    source: Any,
    model: str | Path | nn.Module | ModelHandle,
    out: str | Path,
    *,
    on_chunk: ChunkCallback | None = None,
    client: Any = None,
    **options: Any,
) -> xr.Dataset:
    """Run a model over an image and return the written output, opened lazily with xarray.

    ``source``: a raster path, a numpy/dask array ``(bands, y, x)``, an xarray DataArray (with
    rioxarray georeferencing) or a :class:`~tilerun.sources.Source`. ``model``: a model package
    path or any ``torch.nn.Module``. ``options``: see :class:`PredictOptions`.
    """
    summary = run(source, model, out, PredictOptions.from_kwargs(**options), on_chunk,
                  client=client)
    return xr.open_zarr(open_target(summary.output), decode_coords="all")
