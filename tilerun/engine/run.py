"""The run: check everything, create the output, execute the chunk graph, finalise.

All validation happens before the output store is created, so bad input leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import dask
import dask.threaded
import xarray as xr
from dask.callbacks import Callback
from torch import nn

from tilerun import __version__
from tilerun.blending import Blend
from tilerun.engine.budget import check_budget
from tilerun.engine.checks import check_input
from tilerun.engine.cluster import client_for, run_on_cluster
from tilerun.engine.feeder import DeviceFeeder
from tilerun.engine.graph import WRITE, Job, build_graph
from tilerun.engine.memory import fewer_gc_passes, tune_allocator
from tilerun.engine.options import PredictOptions
from tilerun.engine.partial import ChunkResult
from tilerun.engine.plan import ChunkPlan
from tilerun.engine.runner import Normalizer, TileRunner, resolve_device
from tilerun.engine.skipping import resolve_tissue, skipped_tiles
from tilerun.errors import OptionError, OutputError
from tilerun.geometry import make_grid
from tilerun.models import ModelHandle, as_model
from tilerun.sinks import OutputLayout, Sink, ZarrSink, completed_output
from tilerun.sources import open_source

DEFAULT_TILE = 256
DEFAULT_OVERLAP = 0.25
#: tiles in the probe batch each backend is checked on
PROBE_TILES = 2


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


def _first(*values: Any) -> Any:
    """The first value that is not None (an explicit option beats the spec's recommendation)."""
    return next(v for v in values if v is not None)


def prepare(
    source: Any, model: Any, out: str | Path, options: PredictOptions, sink: Sink | None = None
) -> Job:
    """Open and check source and model, plan the chunks and open the sink (by default a Zarr
    store at ``out``): every check runs before the sink creates anything."""
    sink = sink if sink is not None else ZarrSink(out, overwrite=options.overwrite)
    sink.check()
    handle = as_model(model, allow_pickle=options.allow_pickle, mean=options.mean, std=options.std)
    src = open_source(source, options.bands, **_slide_options(options, handle))
    if (options.mpp is not None or options.level is not None) and not src.is_slide:
        raise OptionError(src.name, "--mpp and --level apply to whole-slide images only")
    check_input(src, handle, options.pixel_size_tolerance)
    bands, height, width = src.shape
    spec = handle.spec
    tile = _first(options.tile, spec.tile, DEFAULT_TILE)
    overlap = _first(options.overlap, spec.overlap, DEFAULT_OVERLAP)
    grid = make_grid(height, width, tile, overlap, handle.downsampling, spec.border)
    blend = Blend(options.blend, options.sigma)
    device = resolve_device(options.device)
    check_budget(grid, options, src, spec, device)  # before the probe runs a whole tile
    runner = TileRunner(handle, device, options.precision, options.tta, options.device,
                        options.backend)
    normalize = Normalizer.for_model(handle, bands, src.dtype)
    example = normalize.example(PROBE_TILES, grid.input_tile)
    classes = runner.probe(bands, grid.input_tile, example)
    runner.select(example, options.batch_size)
    layout = _layout(options, src, spec, classes)
    variables = layout.variables
    plan = ChunkPlan(grid, blend, options.chunk)
    tissue = resolve_tissue(options.tissue, src)
    if tissue is not None:
        plan = replace(plan, skip=skipped_tiles(plan, tissue))
    compute = DeviceFeeder(runner, normalize, blend.weights(grid), options.batch_size)
    job = Job(
        source=src,
        plan=plan,
        runner=runner,
        compute=compute,
        classes=classes,
        sink=sink,
        labels="labels" in variables,
        logits="logits" in variables,
        probabilities=layout.probability_activation if "probabilities" in variables else None,
    )
    sink.open(layout, src.georef, _run_attributes(job, handle, options), options.resume)
    return job


def _layout(options: PredictOptions, source: Any, spec: Any, classes: int) -> OutputLayout:
    """The output's shape and variables: those asked for, plus what the pyramids need."""
    variables = options.output
    pyramids = _pyramid_kinds(options, source)
    if "labels" in pyramids and "labels" not in variables:
        variables = (*variables, "labels")
    if "probabilities" in pyramids and "logits" not in variables:
        variables = (*variables, "logits")  # the NGFF probability pyramid is made from logits
    _, height, width = source.shape
    return OutputLayout(height, width, classes, options.chunk, variables, options.dtype,
                        spec.class_names, activation=spec.activation)


def _slide_options(options: PredictOptions, model: ModelHandle) -> dict[str, Any]:
    """Slide resolution options; ``mpp`` defaults to the model's when its spec is in µm."""
    mpp = options.mpp
    if mpp is None and options.level is None and model.spec.pixel_unit == "um":
        mpp = model.spec.pixel_size
    given = {"mpp": mpp, "level": options.level, "slide_mpp": options.slide_mpp}
    return {k: v for k, v in given.items() if v is not None}


def _run_attributes(job: Job, model: ModelHandle, options: PredictOptions) -> dict[str, Any]:
    """What the output records about how it was made (the ``tilerun`` root attribute)."""
    grid, spec = job.plan.grid, model.spec
    attrs: dict[str, Any] = {
        "version": __version__,
        "input": job.source.name,
        "model": model.name,
        "tile": grid.input_tile,
        "overlap_px": grid.overlap,
        "border_px": grid.border,
        "blend": job.plan.blend.name,
        "sigma": job.plan.blend.sigma,
        "chunk": job.plan.chunk,
        "bands": list(options.bands or range(1, job.source.shape[0] + 1)),
        "class_names": list(spec.class_names) if spec.class_names else None,
        "class_colours": list(spec.class_colours) if spec.class_colours else None,
        "activation": spec.activation,
        "precision": options.precision,
        "tta": options.tta,
        "pixel_size": list(job.source.pixel_size() or ()) or None,
        "slide": job.source.metadata(),
    }
    attrs["fingerprint"] = _fingerprint(attrs, job, options)
    return attrs


def _fingerprint(attrs: dict[str, Any], job: Job, options: PredictOptions) -> str:
    """What must match for ``--resume`` to continue a store: input, model, options, layout."""
    parts = {
        **attrs,
        "input_stat": _stat(job.source.name),
        "model_stat": _stat(attrs["model"]),
        "shape": list(job.source.shape),
        "classes": job.classes,
        "output": list(options.output),
        "dtype": options.dtype,
        "skip": sorted(job.plan.skip),
        "version": None,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stat(name: str) -> list[float] | None:
    try:
        st = Path(name).stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime]


def run(
    source: Any,
    model: str | Path | nn.Module | ModelHandle,
    out: str | Path,
    options: PredictOptions | None = None,
    on_chunk: ChunkCallback | None = None,
    on_start: Callable[[int], None] | None = None,
    client: Any = None,
    sink: Sink | None = None,
) -> RunSummary:
    """Predict ``source`` with ``model`` into the Zarr store ``out``; returns the summary.

    ``on_start(n_chunks)`` is called once the work is planned, ``on_chunk(result)`` after each
    chunk is written (both in the calling thread), e.g. to drive a progress bar. ``client``: a
    ``distributed.Client`` to run the chunk tasks on (see :mod:`tilerun.engine.cluster`).
    ``sink``: where the chunks go (default: a :class:`~tilerun.sinks.ZarrSink` at ``out``).
    """
    options = options or PredictOptions()
    finished = completed_output(out) if options.resume else None
    if finished is not None:
        return _finished_summary(out, finished)
    tune_allocator()
    job = prepare(source, model, out, options, sink)
    try:
        done = job.sink.completed()
        graph, writes = build_graph(job, uuid.uuid4().hex[:12], done)
        if on_start is not None:
            on_start(len(writes))
        start = time.perf_counter()
        with fewer_gc_passes(), _output_failures(out):
            results = _execute(graph, writes, options, on_chunk, client)
        seconds = time.perf_counter() - start
    except BaseException:
        job.sink.abort()
        raise
    finally:
        job.compute.close()
    summary = RunSummary(
        output=str(out),
        # Threads share one compute stage, which counts real model calls; on a cluster each
        # worker has its own copy, so count the tiles of the chunks written.
        tiles_run=job.compute.tiles_run or sum(r.tiles for r in results),
        tiles_minimum=job.plan.grid.count - len(job.plan.skip),
        tiles_skipped=len(job.plan.skip),
        chunks=len(results),
        chunks_resumed=len(done),
        pixels=sum(r.pixels for r in results),
        valid_pixels=sum(r.valid_pixels for r in results),
        seconds=seconds,
        device=str(job.runner.device),
        backend=job.runner.backend_used,
        backend_seconds=job.runner.selection.seconds if job.runner.selection else 0.0,
        batches=dict(sorted(job.compute.batch_sizes.items())),
    )
    pyramids = _pyramids(options, job)
    record = {k: v for k, v in asdict(summary).items() if k not in ("output", "already_complete")}
    with _output_failures(out):
        job.sink.finalize(record, pyramids)
    return summary


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


def _finished_summary(out: str | Path, attrs: dict[str, Any]) -> RunSummary:
    """The summary a complete output recorded (``--resume`` on it does nothing)."""
    known = {f.name for f in fields(RunSummary)} - {"output", "already_complete"}
    recorded = {k: v for k, v in attrs.items() if k in known}
    recorded["batches"] = {int(k): int(v) for k, v in (recorded.get("batches") or {}).items()}
    try:
        return RunSummary(output=str(out), already_complete=True, **recorded)
    except TypeError as err:
        raise OutputError(out, f"is complete but its run record is unreadable ({err})") from err


def _pyramids(options: PredictOptions, job: Job) -> Callable[[Path], None] | None:
    """OME-NGFF pyramids to add before publishing (``auto``: labels, for slides)."""
    kinds = _pyramid_kinds(options, job.source)
    if not kinds:
        return None
    from tilerun.sinks.ngff import write_label_pyramid, write_probability_pyramid

    size = job.source.pixel_size()
    pixel_size, unit = ((size[0], size[0]), size[1]) if size else (None, None)

    # The pyramid's group is called ``probabilities`` unless that is the name of a variable.
    name = "probabilities_pyramid" if job.probabilities is not None else "probabilities"

    def write(store: Path) -> None:
        if "labels" in kinds:
            write_label_pyramid(store, pixel_size=pixel_size, unit=unit)
        if "probabilities" in kinds:
            write_probability_pyramid(store, name=name, pixel_size=pixel_size, unit=unit)

    return write


def _pyramid_kinds(options: PredictOptions, source: Any) -> tuple[str, ...]:
    if options.pyramid == "auto":
        return ("labels",) if source.is_slide else ()
    return () if options.pyramid == "none" else tuple(options.pyramid.split(","))


def _execute(
    graph: dict[Any, Any],
    keys: list[Any],
    options: PredictOptions,
    on_chunk: ChunkCallback | None,
    client: Any = None,
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
            results = dask.threaded.get(graph, keys, num_workers=options.thread_count)
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
    return xr.open_zarr(summary.output, decode_coords="all")
