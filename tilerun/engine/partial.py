"""The two chunk tasks: run owned tiles into a partial sum, and assemble + write a chunk."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tilerun.engine.plan import ChunkPlan
from tilerun.engine.runner import Normalizer, TileRunner, check_finite
from tilerun.geometry import Window
from tilerun.sources import Source


@dataclass(frozen=True)
class Partial:
    """Weighted sums over ``window``: ``num = Σ w·z`` (classes, h, w), ``den = Σ w``, validity."""

    window: Window
    num: np.ndarray
    den: np.ndarray
    valid: np.ndarray

    def crop(self, window: Window) -> Partial:
        """The part inside ``window``, copied so that it does not pin the whole arrays."""
        part = self.window.intersection(window)
        ys, xs = part.slices(self.window)
        return Partial(
            part, self.num[:, ys, xs].copy(), self.den[ys, xs].copy(), self.valid[ys, xs].copy()
        )


def _batches(items: list[Window], size: int) -> Iterator[list[Window]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_tiles(
    source: Source,
    plan: ChunkPlan,
    index: tuple[int, int],
    runner: TileRunner,
    normalize: Normalizer,
    weights: np.ndarray,
    classes: int,
) -> tuple[Partial, ...]:
    """Read the chunk's padded window once, run its owned tiles in batches, blend them.

    Returns the partial sum cut into one piece per target chunk (``plan.targets``), so each
    write task receives only the strip it needs and the rest can be freed early.
    """
    grid = plan.grid
    read = plan.read_window(*index)
    region = plan.partial_window(*index)
    pixels, valid = source.read_padded(read)
    x = normalize(pixels, valid)
    del pixels
    num = np.zeros((classes, region.height, region.width), np.float32)
    den = np.zeros((region.height, region.width), np.float32)
    windows = [grid.tile_window(r, c) for r, c in plan.owned_tiles(*index)]
    b = grid.border
    for batch in _batches(windows, runner.batch_size):
        tiles = np.stack(
            [
                x[
                    :,
                    w.y - b - read.y : w.bottom + b - read.y,
                    w.x - b - read.x : w.right + b - read.x,
                ]
                for w in batch
            ]
        )
        logits = runner(tiles)
        check_finite(logits, f"tiles at (y, x) {[(w.y, w.x) for w in batch]}")
        for tile_window, z in zip(batch, logits, strict=True):
            part = tile_window.intersection(region)
            dst, src = part.slices(region), part.slices(tile_window)
            w = weights[src]
            num[(slice(None), *dst)] += z[(slice(None), *src)] * w
            den[dst] += w
    region_valid = np.asarray(valid[(slice(None), *region.slices(read))].any(axis=0))
    whole = Partial(region, num, den, region_valid)
    return tuple(whole.crop(plan.chunk_window(*t)) for t in plan.targets(*index))


@dataclass(frozen=True)
class ChunkResult:
    """What one write task reports back (small: it travels to the scheduler)."""

    index: tuple[int, int]
    tiles: int
    pixels: int
    valid_pixels: int


def assemble(window: Window, pieces: list[Partial], classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum the pieces reaching ``window``: blended logits (NaN where invalid), validity."""
    num = np.zeros((classes, window.height, window.width), np.float32)
    den = np.zeros((window.height, window.width), np.float32)
    valid = np.zeros((window.height, window.width), bool)
    for piece in pieces:
        ys, xs = piece.window.slices(window)
        num[:, ys, xs] += piece.num
        den[ys, xs] += piece.den
        valid[ys, xs] |= piece.valid
    covered = den > 0  # False only where tiles were skipped (no tissue under them)
    valid &= covered
    logits = np.divide(num, den, out=np.full_like(num, np.nan), where=covered)
    logits[:, ~valid] = np.nan
    return logits, valid


def labels_from_logits(logits: np.ndarray, valid: np.ndarray, fill: int) -> np.ndarray:
    """Argmax class per pixel (``logit > 0`` for a single-class model); ``fill`` where invalid."""
    if logits.shape[0] == 1:
        labels = (np.nan_to_num(logits[0]) > 0).astype(np.uint8)
    else:
        labels = np.nan_to_num(logits, nan=-np.inf).argmax(axis=0).astype(np.uint8)
    labels[~valid] = fill
    return labels
