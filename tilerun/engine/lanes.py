"""What flows through the feeder: chunks in flight, batches, the queues between its threads,
and the small device helpers they need (see :mod:`tilerun.engine.feeder`)."""

from __future__ import annotations

import collections
import contextlib
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tilerun.engine.compute import ChunkWork

#: numpy types torch has no arithmetic for, widened losslessly before upload.
WIDEN = {np.dtype(bool): np.uint8, np.dtype(np.uint16): np.int32,
         np.dtype(np.uint32): np.int64, np.dtype(np.uint64): np.float64}


@dataclass(eq=False)
class Chunk:
    """A chunk inside the feeder: its normalised pixels, its canvas, how far it has got."""

    work: ChunkWork
    future: Future[np.ndarray]
    x: torch.Tensor | None = None
    canvas: torch.Tensor | None = None
    cut: int = 0  # tiles put into batches so far
    blended: int = 0  # tiles added to the canvas so far
    finite: list[torch.Tensor] = field(default_factory=list)


@dataclass(eq=False)
class Batch:
    """Tiles ``x`` (n, bands, T, T) and which chunk each consecutive run of them belongs to."""

    x: torch.Tensor
    parts: list[tuple[Chunk, int, int]]
    ready: Any = None  # a CUDA event: the batch is on the device
    logits: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    finite: torch.Tensor = field(default_factory=lambda: torch.empty(0))


@dataclass(eq=False)
class Lanes:
    """The queues of one generation of threads (a new one starts after an idle exit)."""

    to_model: collections.deque[Batch | None] = field(default_factory=collections.deque)
    to_blend: collections.deque[Batch | None] = field(default_factory=collections.deque)
    model_busy: bool = False
    stopping: bool = False
    threads: list[threading.Thread] = field(default_factory=list)


def finite_tiles(logits: torch.Tensor) -> torch.Tensor:
    """Per tile, whether the float32 sum of its logits is finite: one reduction pass, no mask
    the size of the batch (``isfinite`` on the batch cost 20 ms of CPU per 8 × 4 × 256²,
    this 0.5 ms) and no device synchronisation.

    A NaN or ±inf anywhere makes the sum non-finite. A non-finite sum can also be an overflow
    of huge but finite logits, so :func:`tilerun.engine.blender.finish` only reports tiles when the
    blended canvas itself is not finite.
    """
    return torch.isfinite(logits.sum(dim=(1, 2, 3)))


def normalised(chunk: Chunk) -> torch.Tensor:
    """The chunk's normalised pixels on the device (present until its last tile is cut)."""
    if chunk.x is None:
        raise RuntimeError(f"chunk {chunk.work.index} was released before all its tiles ran")
    return chunk.x


def torch_ready(pixels: np.ndarray) -> np.ndarray:
    """The array in a type and layout torch takes: bool and wide unsigned types are widened,
    and negative strides (a flipped view of the caller's array) are copied away."""
    wider = WIDEN.get(pixels.dtype)
    if wider is not None:
        return pixels.astype(wider)
    return np.ascontiguousarray(pixels) if any(s < 0 for s in pixels.strides) else pixels


def on_stream(stream: Any) -> Any:
    """``torch.cuda.stream(stream)``, or nothing on the CPU."""
    return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
