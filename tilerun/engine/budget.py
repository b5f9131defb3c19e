"""What a run needs, checked before any work: a chunk that suits the tile, and the memory.

An impossible run must fail at once, with the figure, rather than after minutes or never: a
100 000 px tile made the model probe try to allocate 112 GiB, and 1 px chunks built a task
graph that never finished.

Memory (bytes). ``T`` is the model's input tile edge, ``B`` the batch size, ``b`` the bands,
``C`` the classes, ``S`` the input's bytes per value; ``Z_y × Z_x`` is a chunk (the chunk edge,
or the image when smaller) and ``R_y × R_x = (Z_y + T) × (Z_x + T)`` its padded read window
(the tiles a chunk owns start inside it and reach at most ``T`` past it). ``N`` chunks are in
flight: one per thread, times the worker processes, never more than there are chunks.

* model batch, per process: ``B·T²·(b + C)·4`` — the float32 input tiles and their logits;
* staged chunks, per process: ``MAX_STAGED·b·R_y·R_x·4`` — normalised chunks waiting for
  batches (:data:`tilerun.engine.staging.MAX_STAGED`);
* each chunk in flight: ``R_y·R_x·(b·(S + 1) + 4·(C + 1)) + 4·C·Z²`` — pixels and validity
  as read, the float32 blending canvas and weight sum, and the chunk as written: Zarr fills a
  whole ``Z × Z`` chunk before storing it, even where the image ends.

The model's own activations (often several times its batch, depending on the architecture)
and backend workspaces are left out, so the figure is a floor: a run it refuses could not have
fit. It comes before the model is probed (probing runs a whole tile), so the classes are the
spec's (class names, or a tilerun architecture's ``classes`` argument), else 1. On CUDA the
batch and staged chunks are compared with the GPU's free memory, the chunks with the host's.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tilerun.engine.options import DEFAULT_WORKERS, PredictOptions
from tilerun.engine.staging import MAX_STAGED
from tilerun.errors import OptionError
from tilerun.geometry import TileGrid
from tilerun.models import ModelSpec
from tilerun.sources import Source

#: The smallest chunk is the tile divided by this. A write gathers partial sums from
#: ``⌈T/Z⌉ + 1`` chunks per axis, so the graph grows with ``(T/Z)²``; at this ratio a write
#: waits on at most 9 × 9 tile tasks, and the default 256 px tile allows chunks from 32 px.
MAX_CHUNK_SPAN = 8
#: The batch size a user who did not choose one has (not blamed for a batch too large).
DEFAULT_BATCH_SIZE = PredictOptions().batch_size
#: The largest buffer numcodecs' compressors take, so the largest stored chunk (bytes).
MAX_CHUNK_BYTES = 2**31 - 1


@dataclass(frozen=True)
class MemoryEstimate:
    """The floor of a run's memory use, in bytes, by term (see the module docstring)."""

    batch: int
    staged: int
    per_chunk: int
    chunks: int
    processes: int
    #: the image's height and width, when known (to say that a chunk is larger than it)
    image: tuple[int, int] | None = None

    @property
    def device(self) -> int:
        """What sits with the model: the batch and the staged chunks, per process."""
        return (self.batch + self.staged) * self.processes

    @property
    def host(self) -> int:
        """What sits in host memory whatever the device: the chunks in flight."""
        return self.per_chunk * self.chunks


def check_budget(grid: TileGrid, options: PredictOptions, source: Source, spec: ModelSpec,
                 device: torch.device) -> None:
    """Refuse a chunk too small for the tile, or a run that cannot fit in memory."""
    classes = _classes(spec)
    if "://" not in options.scheduler:  # else the work runs on machines not known here
        check_memory(estimate_memory(grid, options, source, classes), options, grid.input_tile,
                     device)
    check_chunk(grid.tile, options.chunk)
    check_chunk_bytes(options.chunk, classes, np.dtype(options.dtype).itemsize)


def check_chunk(tile: int, chunk: int) -> None:
    """A chunk smaller than ``tile / MAX_CHUNK_SPAN`` makes the task graph explode."""
    if chunk * MAX_CHUNK_SPAN < tile:
        span = math.ceil(tile / chunk) + 1
        raise OptionError(
            "--chunk",
            f"{chunk} px chunks are too small for {tile} px tiles: each chunk would gather "
            f"partial sums from up to {span}×{span} chunks; use --chunk "
            f"{math.ceil(tile / MAX_CHUNK_SPAN)} or more",
        )


def check_chunk_bytes(chunk: int, classes: int, itemsize: int) -> None:
    """A stored chunk must fit in one buffer of Zarr's compressors (numcodecs: < 2 GiB)."""
    size = classes * chunk * chunk * itemsize
    if size > MAX_CHUNK_BYTES:
        largest = math.isqrt(MAX_CHUNK_BYTES // (classes * itemsize))
        raise OptionError(
            "--chunk",
            f"{chunk} px chunks of {classes} class(es) are {size_text(size)} each as stored, and "
            f"Zarr's compressors take at most 2 GiB; use --chunk {largest} or less",
        )


def estimate_memory(grid: TileGrid, options: PredictOptions, source: Source,
                    classes: int) -> MemoryEstimate:
    """The terms of the module docstring's formula for this run."""
    tile, bands = grid.input_tile, source.shape[0]
    zy, zx = min(options.chunk, grid.height), min(options.chunk, grid.width)
    read = (zy + tile) * (zx + tile)
    threads, processes = _parallelism(options)
    n_chunks = math.ceil(grid.height / options.chunk) * math.ceil(grid.width / options.chunk)
    return MemoryEstimate(
        batch=options.batch_size * tile * tile * (bands + classes) * 4,
        staged=MAX_STAGED * bands * read * 4,
        per_chunk=read * (bands * (source.dtype.itemsize + 1) + 4 * (classes + 1))
        + 4 * classes * options.chunk**2,
        chunks=min(threads * processes, n_chunks),
        processes=processes,
        image=(grid.height, grid.width),
    )


def check_memory(estimate: MemoryEstimate, options: PredictOptions, tile: int,
                 device: torch.device) -> None:
    """Compare the estimate with the memory available (no check where that is unknown)."""
    ram, gpu = available_memory(), _free_gpu_memory(device)
    if gpu is None:
        needs = [(estimate.host + estimate.device, ram, "this machine")]
    else:
        needs = [(estimate.device, gpu, f"the GPU ({device})"), (estimate.host, ram, "this host")]
    subject, what = _culprit(estimate, options, tile)
    for need, have, where in needs:
        if have is not None and need > have:
            if subject == "--chunk":
                _check_chunk_fits_image(estimate, options.chunk, have)
            raise OptionError(subject, (
                f"{what} need at least {size_text(need)} of memory (model batches of "
                f"{options.batch_size} tiles: {size_text(estimate.batch)}, staged chunks: "
                f"{size_text(estimate.staged)}, {estimate.chunks} chunk(s) in flight: "
                f"{size_text(estimate.host)}); {where} has {size_text(have)} available; lower "
                "--tile, --batch-size, --chunk or --threads"
            ))


def _culprit(estimate: MemoryEstimate, options: PredictOptions, tile: int) -> tuple[str, str]:
    """The option to blame for the largest term, and what it asked for: the batch size when
    the model batches dominate and it was raised (else the tile), the chunk otherwise."""
    if estimate.batch * estimate.processes >= max(estimate.staged * estimate.processes,
                                                  estimate.host):
        if options.batch_size > DEFAULT_BATCH_SIZE:
            return "--batch-size", f"batches of {options.batch_size} tiles of {tile} px"
        return "--tile", f"{tile} px tiles"
    return "--chunk", f"{options.chunk} px chunks"


def _check_chunk_fits_image(estimate: MemoryEstimate, chunk: int, have: int) -> None:
    """A chunk larger than the image costs its whole edge squared (Zarr fills a whole chunk),
    which the general message would report as a figure that seems to come from nowhere."""
    if estimate.image is None or chunk <= max(estimate.image):
        return
    height, width = estimate.image
    raise OptionError("--chunk", (
        f"{chunk} px is larger than the image ({height} × {width} px), and Zarr holds each "
        f"chunk whole in memory even where the image ends: {size_text(estimate.host)} for "
        f"{estimate.chunks} chunk(s) in flight, {size_text(have)} available; use --chunk "
        f"{max(height, width)} or less"
    ))


def available_memory() -> int | None:
    """Bytes of RAM this process may still take: Linux's ``MemAvailable`` (free plus
    reclaimable cache) capped by a cgroup v2 limit when one is set, else the free pages;
    None where neither is known (the check is then skipped)."""
    found = _meminfo_available()
    if found is None:
        try:
            found = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    limit = _cgroup_room()
    return found if limit is None else min(found, limit)


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _cgroup_room() -> int | None:
    """``memory.max − memory.current`` of this process's cgroup (v2), or None."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        used = int((root / "memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


def _free_gpu_memory(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    try:
        return int(torch.cuda.mem_get_info(device)[0])
    except RuntimeError:
        return None


def _parallelism(options: PredictOptions) -> tuple[int, int]:
    """Threads per process and processes (a local cluster's defaults, as it starts them)."""
    if options.distributed:
        return options.threads or 1, options.workers or DEFAULT_WORKERS
    return (1 if options.scheduler == "sync" else options.thread_count), 1


def _classes(spec: ModelSpec) -> int:
    """The class count the spec knows of before the model runs, else 1 (a floor)."""
    if spec.class_names:
        return len(spec.class_names)
    value = (spec.arguments or {}).get("classes")
    return value if isinstance(value, int) and value > 0 else 1


def size_text(n: float) -> str:
    """Bytes in binary units, three significant digits: ``1.3 TiB``."""
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{value:.3g} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
