"""The feeder's stage lane: chunks waiting, chunks on the device, batches cut across them.

:class:`Staging` holds the chunks between ``submit`` and the model: the inbox (queued, not yet
on the device) and the staged chunks (uploaded and normalised, at most :data:`MAX_STAGED`, which
bounds device memory). Batches take exactly ``batch_size`` tiles, oldest chunk first, across
chunk boundaries; a short batch only when the model would otherwise wait (see
:mod:`tilerun.engine.feeder`). The feeder's lock guards every method but :meth:`upload` and
:meth:`stack`, which touch only the chunks being moved.
"""

from __future__ import annotations

import collections
from typing import Any

import torch

from tilerun.engine.lanes import Batch, Chunk, normalised, on_stream, torch_ready
from tilerun.models.normalise import Normalizer

#: Chunks uploaded to the device and waiting for (or in) batches; bounds device memory.
MAX_STAGED = 3

#: ``(chunk, first tile, end tile)`` runs of one batch
Parts = list[tuple[Chunk, int, int]]


class Staging:
    """Queued and staged chunks of one feeder (see the module docstring)."""

    def __init__(self, normalize: Normalizer, batch_size: int, input_edge: int,
                 device: torch.device) -> None:
        self.normalize = normalize
        self.batch_size = batch_size
        self.input_edge = input_edge
        self.device = device
        self.inbox: collections.deque[Chunk] = collections.deque()
        self.staged: collections.deque[Chunk] = collections.deque()
        #: the side CUDA stream uploads and batch stacking run on (None on the CPU)
        self.copy_stream: Any = None

    def clear(self) -> None:
        self.inbox.clear()
        self.staged.clear()

    def holds_chunks(self) -> bool:
        return bool(self.inbox or self.staged)

    def pending_tiles(self) -> int:
        """Tiles on the device not yet cut into a batch."""
        return sum(c.work.tiles - c.cut for c in self.staged)

    def has_work(self, model_waits: bool) -> bool:
        """A chunk to admit, a full batch to cut, or a short one the idle model wants."""
        if self.inbox and len(self.staged) < MAX_STAGED:
            return True
        pending = self.pending_tiles()
        return pending >= self.batch_size or (pending > 0 and model_waits)

    def admit(self) -> list[Chunk]:
        """Move queued chunks to the staged ones while there is room."""
        new = []
        while self.inbox and len(self.staged) < MAX_STAGED:
            chunk = self.inbox.popleft()
            self.staged.append(chunk)
            new.append(chunk)
        return new

    def upload(self, chunk: Chunk) -> None:
        """Pixels to the device (pinned, on the copy stream when on CUDA), then normalised."""
        work = chunk.work
        pixels = torch.from_numpy(torch_ready(work.pixels))
        valid = None if work.valid is None else torch.from_numpy(work.valid)
        if self.device.type != "cuda":
            chunk.x = self.normalize(pixels, valid)
            return
        with on_stream(self.copy_stream):
            pixels = pixels.pin_memory().to(self.device, non_blocking=True)
            valid = None if valid is None else valid.pin_memory().to(self.device,
                                                                     non_blocking=True)
            chunk.x = self.normalize(pixels, valid)

    def take(self, model_waits: bool) -> Parts | None:
        """The runs of tiles of the next batch (None: wait for more), marked as cut."""
        pending = self.pending_tiles()
        if pending == 0 or (pending < self.batch_size and not model_waits):
            return None
        parts, need = [], self.batch_size
        for chunk in self.staged:
            take = min(need, chunk.work.tiles - chunk.cut)
            if take > 0:
                parts.append((chunk, chunk.cut, chunk.cut + take))
                chunk.cut += take
                need -= take
            if need == 0:
                break
        while self.staged and self.staged[0].cut == self.staged[0].work.tiles:
            self.staged.popleft()
        return parts

    def stack(self, parts: Parts) -> Batch:
        """The batch of those tiles, cut from the chunks' normalised pixels on the device."""
        side = self.input_edge
        with on_stream(self.copy_stream):
            views = [normalised(chunk)[:, y: y + side, x: x + side]
                     for chunk, a, b in parts for y, x in chunk.work.offsets[a:b].tolist()]
            batch = Batch(torch.stack(views), parts)
            if self.copy_stream is not None:
                batch.ready = torch.cuda.Event()
                batch.ready.record(self.copy_stream)
        for chunk, _, b in parts:
            if b == chunk.work.tiles:
                chunk.x = None  # its pixels are all in batches now
        return batch
