"""A job: many scenes into one output folder, at the throughput of one big image.

:func:`predict_many` expands its inputs (:mod:`tilerun.sources.inputs`), loads the model once
(:class:`~tilerun.engine.prepared.PreparedModel`) and runs each scene with the single-scene
:func:`~tilerun.engine.execute.run` — its checks, sink, resume and run report — into
``OUTDIR/<stem>.zarr``.

Scenes overlap, and memory stays that of one scene. Every scene's chunk tasks run on the
job's one pool of threads (``--threads``, as for one scene), so the chunks in flight are
bounded as for one scene whatever the number of inputs. A scene is *admitted* to the pool
once the scenes already computing have fewer chunks left than there are threads: a big scene
has the threads to itself until its tail, a small one shares them with the next ones, and
its tail's tiles share batches with the next scene's head (one compute stage per model and
input shape). One scene at a time is opened ahead (read, checked, its store created) while
the others compute. A bad input fails alone, with one line; the others go on.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tilerun.engine.execute import RunSummary, run
from tilerun.engine.memory import fewer_gc_passes, tune_allocator
from tilerun.engine.options import PredictOptions
from tilerun.engine.prepared import PreparedModel
from tilerun.engine.runner import resolve_device
from tilerun.errors import (
    InputError,
    OptionError,
    OutputError,
    SpecWarning,
    TilerunError,
    first_line,
)
from tilerun.models import as_model
from tilerun.models.advice import missing_spec
from tilerun.sinks import object_url
from tilerun.sinks.job_summary import JobRecord, JobSummary, SceneResult
from tilerun.sources.inputs import JobInput, expand_inputs, output_stems, scene_source

#: Scenes opened ahead of those computing (read, checked, store created).
LOOKAHEAD = 1


class JobEvents:
    """What a job reports as it goes (for a progress display); every method is optional.
    Called from the job's scene threads, so an implementation locks what it shares."""

    def job_started(self, scenes: Sequence[SceneResult]) -> None:
        """The inputs are expanded; ``scenes`` are all pending."""

    def scene_started(self, index: int, scene: SceneResult, chunks: int) -> None:
        """Scene ``index`` is admitted and has ``chunks`` chunks to write."""

    def chunk_done(self, index: int, result: Any) -> None:
        """One chunk of scene ``index`` is written (``result``: its ChunkResult)."""

    def scene_done(self, index: int, scene: SceneResult) -> None:
        """Scene ``index`` ended (done, skipped, failed or interrupted)."""


def predict_many(
    inputs: Any,
    model: Any,
    out_dir: str | Path,
    options: PredictOptions | None = None,
    *,
    events: JobEvents | None = None,
    client: Any = None,
) -> JobSummary:
    """Predict every scene ``inputs`` name into ``out_dir/<stem>.zarr``; returns the job's
    summary, also written to ``out_dir/tilerun-job.json``.

    ``inputs``: a path, URL, folder, glob, ``@list`` file, STAC ItemCollection or Item (a
    ``.json`` path or URL, or a pystac object), or a list of those. ``model``: as for
    :func:`tilerun.run`. ``options``: one :class:`PredictOptions` for every scene (with
    ``resume``, complete outputs are skipped, unfinished ones continued, failed ones run
    again). ``client``: a ``distributed.Client`` to spread the chunks over. A bad input
    fails alone: its entry says why; the summary's ``exit_code`` is 2 when any failed.
    """
    options = options or PredictOptions()
    single = isinstance(inputs, (str, Path)) or type(inputs).__name__ in ("Item", "ItemCollection")
    entries = expand_inputs([inputs] if single else list(inputs))
    _check_runnable(entries)
    started = time.perf_counter()
    handle = as_model(model, allow_pickle=options.allow_pickle, mean=options.mean,
                      std=options.std)
    loaded = time.perf_counter() - started
    folder = job_folder(out_dir)  # made only once inputs and model passed their checks
    stems, notes = output_stems(entries)
    scenes = tuple(SceneResult(e.ref, scene_output(folder, s)) for e, s in zip(entries, stems,
                                                                             strict=True))
    record = JobRecord(JobSummary(str(folder), handle.name, scenes, renamed=tuple(notes),
                                  options=_options_record(options)))
    events = events or JobEvents()
    events.job_started(scenes)
    tune_allocator()
    with _job_threads(options, client) as (executor, active), fewer_gc_passes():
        prepared = PreparedModel(handle, resolve_device(options.device), executor, active)
        advice = missing_spec(handle)  # once for the job, not once per scene
        if advice is not None:
            warnings.warn(advice, SpecWarning, stacklevel=2)
        try:
            _Scenes(entries, record, prepared, options, events).run()
        finally:
            prepared.close()
    return record.finish(finished=True, backends=prepared.backends,
                         prepare_seconds=loaded + prepared.seconds)


def _check_runnable(entries: list[JobInput]) -> None:
    """Refuse a job with nothing to run (no input, or none that names a scene) before any
    output is made: one line naming what was given."""
    if not entries:
        raise InputError("inputs", "none given")
    if all(e.problem is not None for e in entries):
        first, *rest = entries
        others = "".join(f"; {e.ref}: {e.problem}" for e in rest)
        raise InputError(first.ref, f"{first.problem}{others}")


def job_folder(out_dir: str | Path) -> str | Path:
    """The job's folder (made when missing; its parent must exist), or a bucket URL."""
    if str(out_dir).rstrip("/").lower().endswith(".zarr"):
        raise OptionError("-o", f"{out_dir} ends in .zarr, but a job writes one store per "
                          "input into a folder: name a folder")
    url = object_url(str(out_dir))
    if url is not None:
        return url
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise OutputError(folder, "is a file; a job's output must be a folder")
    if not folder.parent.is_dir():
        raise OutputError(folder, f"parent folder {folder.parent} does not exist")
    try:
        folder.mkdir(exist_ok=True)
    except OSError as err:
        raise OutputError(folder, f"cannot create the folder ({err.strerror or err})") from err
    return folder


def scene_output(folder: str | Path, stem: str) -> str:
    """``folder/<stem>.zarr`` (a URL stays a URL)."""
    if isinstance(folder, str) and object_url(folder) is not None:
        return f"{folder.rstrip('/')}/{stem}.zarr"
    return str(Path(folder) / f"{stem}.zarr")


def _options_record(options: PredictOptions) -> dict[str, Any]:
    """The options as the record keeps them (JSON types: lists, not tuples)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()
            if v is not None}


@contextlib.contextmanager
def _job_threads(options: PredictOptions, client: Any) -> Iterator[tuple[Any, Any]]:
    """The pool every scene's chunk tasks share, or the cluster's client."""
    if client is not None or options.distributed:
        from tilerun.engine.cluster import client_for

        with client_for(options, client) as active:
            yield None, active
        return
    with ThreadPoolExecutor(options.thread_count, thread_name_prefix="tilerun-chunk") as pool:
        yield pool, None


class _Admission:
    """Admits a scene to the threads once the computing scenes have fewer chunks left than
    there are threads (see the module docstring); ``cancel`` stops everything (Ctrl-C)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.cancelled = False
        self._left: dict[int, int] = {}
        self._cv = threading.Condition()

    def admit(self, index: int, chunks: int) -> None:
        with self._cv:
            self._cv.wait_for(lambda: self.cancelled or
                              sum(self._left.values()) < self.capacity)
            if self.cancelled:
                raise KeyboardInterrupt
            self._left[index] = chunks

    def chunk_done(self, index: int) -> None:
        if self.cancelled:
            raise KeyboardInterrupt
        with self._cv:
            self._left[index] = max(0, self._left.get(index, 1) - 1)
            self._cv.notify_all()

    def leave(self, index: int) -> None:
        with self._cv:
            self._left.pop(index, None)
            self._cv.notify_all()

    def cancel(self) -> None:
        with self._cv:
            self.cancelled = True
            self._cv.notify_all()


class _Scenes:
    """The scene loop: one thread per scene in flight, opened one ahead, admitted by
    :class:`_Admission`; the main thread waits (and takes Ctrl-C)."""

    def __init__(self, entries: list[JobInput], record: JobRecord, prepared: PreparedModel,
                 options: PredictOptions, events: JobEvents) -> None:
        self.entries, self.record, self.prepared = entries, record, prepared
        self.options, self.events = options, events
        self.admission = _Admission(_capacity(options, prepared.client))
        self.opening = threading.Semaphore(LOOKAHEAD)

    def run(self) -> None:
        threads = self.admission.capacity + LOOKAHEAD + 1  # + 1: a scene publishing
        pool = ThreadPoolExecutor(threads, thread_name_prefix="tilerun-scene")
        futures: list[Future[None]] = []
        try:
            for index in range(len(self.entries)):
                while not self.opening.acquire(timeout=0.1):
                    pass
                futures.append(pool.submit(self._scene, index))
            for future in futures:
                while not _finished(future):
                    pass
        except KeyboardInterrupt:
            self.admission.cancel()
            for future in futures:
                while not _finished(future):
                    pass
            self.record.finish()
            raise
        finally:
            pool.shutdown(wait=True)

    def _scene(self, index: int) -> None:
        entry = self.entries[index]
        scene = self.record.summary.scenes[index]
        start = time.perf_counter()
        released, waited = False, 0.0

        def on_start(chunks: int) -> None:
            nonlocal released, waited
            before = time.perf_counter()
            self.admission.admit(index, chunks)
            waited = time.perf_counter() - before
            self.opening.release()  # admitted: the next scene may open
            released = True
            self.events.scene_started(index, scene, chunks)

        def on_chunk(result: Any) -> None:
            self.admission.chunk_done(index)
            self.events.chunk_done(index, result)

        try:
            scene = self._run(entry, scene, on_start, on_chunk)
        except KeyboardInterrupt:
            scene = replace(scene, status="interrupted")
        except TilerunError as err:
            scene = replace(scene, status="failed", error=str(err))
        except Exception as err:  # any other failure of one input fails it alone
            scene = replace(scene, status="failed", error=f"{entry.ref}: {first_line(err)}")
        finally:
            if not released:
                self.opening.release()
            self.admission.leave(index)
        scene = replace(scene, seconds=time.perf_counter() - start - waited)
        self.record.scene(index, scene)
        self.events.scene_done(index, scene)

    def _run(self, entry: JobInput, scene: SceneResult, on_start: Any,
             on_chunk: Any) -> SceneResult:
        if entry.problem is not None:
            return replace(scene, status="failed", error=f"{entry.ref}: {entry.problem}")
        source, banded = scene_source(entry, self.options.bands,
                                      self.prepared.handle.spec.band_names,
                                      self.options.resampling)
        options = replace(self.options, bands=None) if banded else self.options
        summary: RunSummary = run(source, self.prepared.handle, scene.output, options,
                                  on_chunk=on_chunk, on_start=on_start, prepared=self.prepared)
        return replace(scene, status="skipped" if summary.already_complete else "done",
                       tiles=0 if summary.already_complete else summary.tiles_run,
                       pixels=summary.pixels, chunks_resumed=summary.chunks_resumed)


def _finished(future: Future[None]) -> bool:
    """Wait a little for ``future`` (short waits, so that Ctrl-C reaches the main thread)."""
    try:
        future.result(timeout=0.1)
    except TimeoutError:
        return False
    return True


def _capacity(options: PredictOptions, client: Any) -> int:
    """Chunks computed at once: the threads of one scene, or the cluster's."""
    if client is not None:
        with contextlib.suppress(Exception):
            return max(1, sum(client.nthreads().values()))
        return options.workers or 1
    return options.thread_count
