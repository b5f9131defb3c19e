"""The first half of every run, and of ``--dry-run``: open and check everything, probe the model.

:func:`open_checked` runs every check that needs no work — the destination, the model, the
input and its fit to the model, the tile grid, the memory budget — and probes the model on one
batch to learn its class count, in the order that fails cheapest first. A run then picks its
backend and opens the sink; a dry run only reports. Nothing is written here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from tilerun.blending import Blend
from tilerun.engine.budget import check_budget
from tilerun.engine.checks import check_input
from tilerun.engine.cluster import check_scheduler
from tilerun.engine.decisions import (
    DEFAULT_OVERLAP,
    PROBE_TILES,
    first,
    model_tile,
    slide_options,
)
from tilerun.engine.options import PredictOptions
from tilerun.engine.plan import ChunkPlan
from tilerun.engine.prepared import PreparedModel
from tilerun.engine.runner import TileRunner, resolve_device
from tilerun.engine.skipping import resolve_tissue, skipped_tiles
from tilerun.errors import OptionError, OutputExistsError, SpecWarning
from tilerun.extras import require_extra
from tilerun.geometry import TileGrid, make_grid
from tilerun.models import ModelHandle, as_model
from tilerun.models.advice import missing_spec
from tilerun.models.normalise import Normalizer
from tilerun.models.scaling import applied_scaling, model_dtype
from tilerun.phases import phase
from tilerun.sinks import Sink, sink_for
from tilerun.sources import open_source


@dataclass(frozen=True)
class Opened:
    """Everything checked, with the model probed (its reference output kept by ``runner``)."""

    sink: Sink
    model: ModelHandle
    source: Any
    grid: TileGrid
    blend: Blend
    device: torch.device
    runner: TileRunner
    normalize: Normalizer
    #: the probe batch, for the backends' check against eager torch
    example: torch.Tensor
    classes: int
    #: with ``existing_ok`` (a dry run): why a run would refuse the existing output, if it would
    output_exists: str | None = None

    def chunk_plan(self, options: PredictOptions) -> ChunkPlan:
        """The chunk plan, without the tiles no tissue lies under (slides)."""
        plan = ChunkPlan(self.grid, self.blend, options.chunk)
        tissue = resolve_tissue(options.tissue, self.source)
        return plan if tissue is None else replace(plan, skip=skipped_tiles(plan, tissue))


def open_checked(
    source: Any, model: Any, out: str | Path, options: PredictOptions, sink: Sink | None = None,
    existing_ok: bool = False, check_sink: bool = True, prepared: PreparedModel | None = None,
) -> Opened:
    """Open and check destination (unless ``check_sink`` is False: to identify the job of a
    complete output), model and input; probe the model (see the module doc).
    ``existing_ok``: an existing output is noted (``Opened.output_exists``), not refused.
    ``prepared``: a job's model, loaded and probed once for all its scenes (``model`` is then
    not used; see :mod:`tilerun.engine.prepared`)."""
    with phase("opening"):
        if options.distributed:
            require_extra("cluster", "--scheduler" if options.workers is None else "--workers")
        if "://" in options.scheduler:
            check_scheduler(options.scheduler)  # a wrong address: one line now, not after minutes
        sink = sink if sink is not None else sink_for(out, overwrite=options.overwrite)
        exists = _checked_sink(sink, existing_ok) if check_sink else None
    with phase("model"):
        handle = prepared.handle if prepared is not None else as_model(
            model, allow_pickle=options.allow_pickle, mean=options.mean, std=options.std)
    with phase("opening"):
        src = _opened_source(source, options, handle)
    bands, height, width = src.shape
    spec = handle.spec
    tile = model_tile(options.tile, handle)
    overlap = first(options.overlap, spec.overlap, DEFAULT_OVERLAP)
    grid = make_grid(height, width, tile, overlap, handle.downsampling, spec.border)
    blend = Blend(options.blend, options.sigma)
    device = prepared.device if prepared is not None else resolve_device(options.device)
    check_budget(grid, options, src, spec, device)  # before the probe runs a whole tile
    with phase("model"):
        normalize = Normalizer.for_model(handle, bands, model_dtype(src, spec),
                                         applied_scaling(src, spec))
        example = normalize.example(PROBE_TILES, grid.input_tile)
        runner, classes = _probed(handle, device, options, (bands, grid.input_tile, src),
                                  example, prepared)
    if prepared is None:  # a job warns once, for its first scene (see engine.prepared)
        advice = missing_spec(handle)  # once every check passed: a refused run says only why
        if advice is not None:
            warnings.warn(advice, SpecWarning, stacklevel=2)
    return Opened(sink, handle, src, grid, blend, device, runner, normalize, example, classes,
                  exists)


def _probed(handle: ModelHandle, device: Any, options: PredictOptions,
            shape: tuple[int, int, Any], example: Any,
            prepared: PreparedModel | None) -> tuple[TileRunner, int]:
    """The runner for the model and its class count from a probe batch; a job probes each
    (bands, tile, pixel type) once (``shape``: bands, input tile, the source)."""
    bands, tile, src = shape

    def make() -> TileRunner:
        return TileRunner(handle, device, options.precision, options.tta, options.device,
                          options.backend)

    def probe(runner: TileRunner) -> int:
        return runner.probe(bands, tile, example)

    if prepared is None:
        runner = make()
        return runner, probe(runner)
    known = prepared.probed((bands, tile, str(src.dtype)), make, probe)
    return known.runner, known.classes


def _checked_sink(sink: Sink, existing_ok: bool) -> str | None:
    """Check the destination; with ``existing_ok``, return the refusal an existing output
    would get instead of raising it."""
    try:
        sink.check()
    except OutputExistsError as err:
        if not existing_ok:
            raise
        return err.problem
    return None


def _opened_source(source: Any, options: PredictOptions, model: ModelHandle) -> Any:
    """The input opened and checked against the model's spec."""
    src = open_source(source, options.bands, model_bands=model.spec.band_names,
                      resampling=options.resampling, **slide_options(options, model))
    if (options.mpp is not None or options.level is not None) and not src.is_slide:
        raise OptionError(src.name, "--mpp and --level apply to whole-slide images only")
    check_input(src, model, options.pixel_size_tolerance)
    return src
