"""The feeder's blend lane: each tile's logits, times the weight window, into its chunk's
float32 canvas on the device; a finished chunk's canvas checked and brought to the host.

Tiles overlap, so this is one fused multiply-add per tile (``addcmul_`` on a canvas slice).
Measured per batch of 8 tiles of 4×256² on one CPU thread, the per-tile add beat one
``index_add_`` over precomputed flat indices (2.2× slower) and ``fold``/col2im (6× slower).
"""

from __future__ import annotations

import torch

from tilerun.engine.compute import ChunkWork
from tilerun.engine.lanes import Batch, Chunk
from tilerun.errors import NonFiniteError


class Blender:
    """Blends batches into canvases with the weight window ``weights`` (on the device)."""

    def __init__(self, weights: torch.Tensor, border: int) -> None:
        self.weights = weights
        self.border = border

    def blend(self, batch: Batch) -> None:
        """``canvas[:, tile] += w · z`` for each tile of the batch, in float32.

        One fused ``addcmul_`` per tile: 4.3 ms of CPU per chunk of 25 tiles (4×256²) against
        21 ms for a batched ``z * w`` followed by slice-adds, which streams a temporary the
        size of the batch through memory.
        """
        edge, weights = int(batch.logits.shape[-1]), self.weights
        k = 0
        for chunk, a, b in batch.parts:
            if chunk.canvas is None:
                chunk.canvas = self.zeros_canvas(chunk.work, int(batch.logits.shape[1]))
            for y, x in chunk.work.offsets[a:b].tolist():
                chunk.canvas[:, y: y + edge, x: x + edge].addcmul_(batch.logits[k], weights)
                k += 1
            chunk.finite.append(batch.finite[k - (b - a): k])
            chunk.blended += b - a
            if chunk.blended == chunk.work.tiles:
                finish(chunk)

    def zeros_canvas(self, work: ChunkWork, classes: int) -> torch.Tensor:
        window = work.canvas_window(self.border)
        return torch.zeros((classes, window.height, window.width), dtype=torch.float32,
                           device=self.weights.device)


def finish(chunk: Chunk) -> None:
    """Check the chunk's tiles were finite, bring its canvas to the host, resolve it."""
    finite = torch.cat(chunk.finite).cpu().numpy()
    canvas, chunk.canvas = chunk.canvas, None
    if chunk.future.done():  # already failed: the stage broke or was closed meanwhile
        return
    if canvas is None:
        raise RuntimeError(f"chunk {chunk.work.index} finished without a canvas")
    if not finite.all() and not bool(torch.isfinite(canvas).all()):
        bad = [yx for yx, ok in zip(chunk.work.tile_origins(), finite, strict=True) if not ok]
        chunk.future.set_exception(
            NonFiniteError(f"tiles at (y, x) {bad}", "the model produced non-finite logits")
        )
        return
    chunk.future.set_result(canvas.cpu().numpy())
