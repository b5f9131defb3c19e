"""What a run would do, without doing it (``tilerun predict --dry-run``).

:func:`plan_run` takes the steps of :func:`tilerun.engine.execute.prepare` up to the sink's
``open``: the same checks (output destination, model, input against the model's spec, chunk
and memory budget, explicit backend), the same tile grid, chunk plan and tissue skipping, and
one probe of the model as loaded to learn its class count. It converts, checks and races no
backend (it names ``auto``'s candidates, or the one asked for), and creates nothing: no
output, no ``.partial`` store, no lock.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tilerun.backends import Target
from tilerun.backends.race import remembered
from tilerun.backends.select import auto_order, backend_candidates, own_runtime, reference_name
from tilerun.engine.budget import MemoryEstimate, available_memory, estimate_memory
from tilerun.engine.decisions import (
    output_layout,
    pyramid_kinds,
)
from tilerun.engine.opening import open_checked
from tilerun.engine.options import PredictOptions
from tilerun.engine.workers import fit_workers
from tilerun.models import ModelHandle
from tilerun.models.scaling import scaling_record
from tilerun.sinks import Sink
from tilerun.sinks.layout.store import OutputStore, output_store

#: The type each output variable is stored as (see :mod:`tilerun.sinks.layout.variables`): logits in
#: the ``dtype`` option, labels and probabilities in uint8.
STORED_DTYPES = {"labels": "uint8", "probabilities": "uint8"}


@dataclass(frozen=True)
class VariablePlan:
    """One output variable: its shape and type as stored, and its size before compression."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class RunPlan:
    """What :func:`tilerun.run` would do with these arguments (see :func:`plan_run`)."""

    input: str
    output: str
    model: str
    #: the name in the model's spec (the bundled model's is ``demo``), if it has one
    model_name: str | None
    #: bands, height and width as read (after ``bands``, and a slide's level or resampling)
    shape: tuple[int, int, int]
    #: the model's input tile edge and the overlap between tiles, in pixels
    tile: int
    overlap: int
    #: tiles in the grid, and those skipped because no tissue lies under them
    tiles: int
    tiles_skipped: int
    chunk: int
    chunks: int
    classes: int
    variables: tuple[VariablePlan, ...]
    pyramids: tuple[str, ...]
    memory: MemoryEstimate
    #: bytes of RAM available now (None where unknown)
    memory_available: int | None
    device: str
    #: the backend asked for (``auto`` or a name) and the ones the run may use (``auto``'s in
    #: its fixed order, whatever an earlier race chose: a plan reads the same every time)
    backend: str
    backend_candidates: tuple[str, ...]
    #: ``auto``: the backend an earlier race on this machine chose (the run tries it first)
    backend_cached: str | None = None
    #: with ``resume``: chunks an unfinished store at the output already holds (None: no
    #: such store); the run keeps them if that store was written by the same run
    chunks_written: int | None = None
    #: why a run would refuse the output as it is (it exists: pass --overwrite), if it would;
    #: the dry run plans all the same
    output_exists: str | None = None
    #: how the overlap asked for was rounded to the model's downsampling factor (None: as is)
    overlap_note: str | None = None
    #: what the backends are checked against (eager torch, or an ONNX model's ONNX Runtime;
    #: empty where ``auto`` runs an ONNX model on its own runtime, unchecked)
    backend_reference: str = "eager torch fp32"
    #: the names of the bands read (None: the input names none) and the input's own
    #: scale/offset with whether it is applied (see :mod:`tilerun.models.scaling`)
    band_names: tuple[str | None, ...] | None = None
    scale_offset: dict[str, Any] | None = None

    @property
    def tiles_run(self) -> int:
        """Tiles the run computes: each once (chunks share the tiles that straddle them)."""
        return self.tiles - self.tiles_skipped

    @property
    def output_bytes(self) -> int:
        """The variables' size before compression (pyramids not included)."""
        return sum(v.nbytes for v in self.variables)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (sizes in bytes)."""
        data = asdict(self)
        data["variables"] = {v.name: {"dtype": v.dtype, "shape": list(v.shape),
                                      "bytes": v.nbytes} for v in self.variables}
        data["memory"] = {"host": self.memory.host, "device": self.memory.device,
                          "total": self.memory.host + self.memory.device,
                          "chunks_in_flight": self.memory.chunks,
                          "processes": self.memory.processes}
        data["shape"] = list(self.shape)
        data["pyramids"] = list(self.pyramids)
        data["backend_candidates"] = list(self.backend_candidates)
        data["tiles_run"] = self.tiles_run
        data["output_bytes"] = self.output_bytes
        return data


def plan_run(
    source: Any,
    model: str | Path | torch.nn.Module | ModelHandle,
    out: str | Path,
    options: PredictOptions | None = None,
    sink: Sink | None = None,
) -> RunPlan:
    """Check everything a run checks before its work and say what it would do; write nothing.

    Raises what :func:`tilerun.run` would raise before any work (a one-line
    :class:`~tilerun.errors.TilerunError`), except for a backend that ``auto`` would skip
    with a warning after trying it.
    """
    options = fit_workers(options or PredictOptions())
    opened = open_checked(source, model, out, options, sink, existing_ok=True)
    src, grid, classes, handle = opened.source, opened.grid, opened.classes, opened.model
    bands, height, width = src.shape
    target = Target(opened.device, options.precision, bands, grid.input_tile,
                    options.batch_size, torch.get_num_threads())
    candidates = backend_candidates(handle, target, options.backend)
    cached = None
    if options.backend == "auto":
        cached = candidates[0] if remembered(handle, target) in candidates else None
        candidates = tuple(n for n in auto_order(handle, target) if n in candidates)
    layout = output_layout(options, src, handle.spec, classes, opened.sink)
    plan = opened.chunk_plan(options)
    variables = tuple(
        VariablePlan(name, STORED_DTYPES.get(name, options.dtype),
                     (height, width) if name == "labels" else (classes, height, width))
        for name in layout.variables
    )
    return RunPlan(
        input=src.name,
        output=str(out),
        model=handle.name,
        model_name=handle.spec.name,
        shape=(bands, height, width),
        tile=grid.input_tile,
        overlap=grid.overlap,
        tiles=grid.count,
        tiles_skipped=len(plan.skip),
        chunk=options.chunk,
        chunks=len(plan.chunks()),
        classes=classes,
        variables=variables,
        pyramids=pyramid_kinds(options, src, opened.sink),
        memory=estimate_memory(grid, options, src, classes),
        memory_available=available_memory(),
        device=str(opened.device),
        backend=options.backend,
        backend_candidates=candidates,
        backend_cached=cached,
        chunks_written=_written_before(out, layout.chunk_grid) if options.resume else None,
        output_exists=opened.output_exists,
        overlap_note=grid.overlap_note,
        backend_reference="" if own_runtime(handle, target, options.backend)
        else reference_name(handle),
        band_names=tuple(n[0] if n else None for n in src.band_labels) or None,
        scale_offset=scaling_record(src, handle.spec),
    )


def _written_before(out: str | Path, grid: tuple[int, int]) -> int | None:
    """Chunks the unfinished store at ``out`` holds (a folder's ``.partial``, or the store in
    object storage), if it has this run's chunk grid."""
    output = output_store(out)
    if isinstance(output, OutputStore):
        done = output.chunks_done(output.staging) if output.staging.exists() else None
    else:
        done = output.chunks_done(output.located()) if output.exists() else None
    return int(done.sum()) if done is not None and done.shape == grid else None
