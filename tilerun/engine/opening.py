"""The first half of every run, and of ``--dry-run``: open and check everything, probe the model.

:func:`open_checked` runs every check that needs no work — the destination, the model, the
input and its fit to the model, the tile grid, the memory budget — and probes the model on one
batch to learn its class count, in the order that fails cheapest first. A run then picks its
backend and opens the sink; a dry run only reports. Nothing is written here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from tilerun.blending import Blend
from tilerun.engine.budget import check_budget
from tilerun.engine.checks import check_input
from tilerun.engine.decisions import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    PROBE_TILES,
    first,
    slide_options,
)
from tilerun.engine.options import PredictOptions
from tilerun.engine.plan import ChunkPlan
from tilerun.engine.runner import TileRunner, resolve_device
from tilerun.engine.skipping import resolve_tissue, skipped_tiles
from tilerun.errors import OptionError
from tilerun.geometry import TileGrid, make_grid
from tilerun.models import ModelHandle, as_model
from tilerun.models.normalise import Normalizer
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

    def chunk_plan(self, options: PredictOptions) -> ChunkPlan:
        """The chunk plan, without the tiles no tissue lies under (slides)."""
        plan = ChunkPlan(self.grid, self.blend, options.chunk)
        tissue = resolve_tissue(options.tissue, self.source)
        return plan if tissue is None else replace(plan, skip=skipped_tiles(plan, tissue))


def open_checked(
    source: Any, model: Any, out: str | Path, options: PredictOptions, sink: Sink | None = None
) -> Opened:
    """Open and check destination, model and input; probe the model (see the module doc)."""
    sink = sink if sink is not None else sink_for(out, overwrite=options.overwrite)
    sink.check()
    handle = as_model(model, allow_pickle=options.allow_pickle, mean=options.mean, std=options.std)
    src = open_source(source, options.bands, **slide_options(options, handle))
    if (options.mpp is not None or options.level is not None) and not src.is_slide:
        raise OptionError(src.name, "--mpp and --level apply to whole-slide images only")
    check_input(src, handle, options.pixel_size_tolerance)
    bands, height, width = src.shape
    spec = handle.spec
    tile = first(options.tile, spec.tile, DEFAULT_TILE)
    overlap = first(options.overlap, spec.overlap, DEFAULT_OVERLAP)
    grid = make_grid(height, width, tile, overlap, handle.downsampling, spec.border)
    blend = Blend(options.blend, options.sigma)
    device = resolve_device(options.device)
    check_budget(grid, options, src, spec, device)  # before the probe runs a whole tile
    runner = TileRunner(handle, device, options.precision, options.tta, options.device,
                        options.backend)
    normalize = Normalizer.for_model(handle, bands, src.dtype)
    example = normalize.example(PROBE_TILES, grid.input_tile)
    classes = runner.probe(bands, grid.input_tile, example)
    return Opened(sink, handle, src, grid, blend, device, runner, normalize, example, classes)
