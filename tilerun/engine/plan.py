"""Which chunk task computes which tiles, and which chunk writes need whose results.

Output chunks of ``Z × Z`` pixels are the unit of work. Two kinds of task per chunk:

* ``tiles(i, j)`` runs the tiles the chunk *owns* and blends them into a partial sum;
* ``write(i, j)`` adds up every partial that reaches chunk ``(i, j)``, normalises and writes
  the chunk, exactly once.

**Ownership (first touch).** A tile belongs to the chunk holding the first pixel of its
*support* (where its blending weight is non-zero), clipped to the image:
``owner = floor(max(support_start, 0) / Z)`` per axis. Every tile is owned by exactly one
chunk, so **no tile is ever computed twice**, whatever the chunk size: tiles run = the grid's
minimum ``ceil(H/S) · ceil(W/S)``.

Because a tile's support starts inside its owner and reaches at most ``T`` pixels further,
partial sums only flow *forward* (to larger ``i`` and ``j``): a write needs the tile tasks of its
own chunk and of the ``ceil(T/Z)`` chunks before it on each axis. Those run earlier in row-major
order, so each write can run as soon as its own tiles are done, and only the thin spill strips
(at most ``T`` pixels wide) wait for a later chunk. That keeps peak memory bounded by chunk size,
tile size and image *width* strips rather than by image area.

Everything is separable, so the plan is built per axis (:class:`AxisPlan`) and combined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from tilerun.blending import Blend
from tilerun.geometry import TileGrid, Window


@dataclass(frozen=True)
class AxisPlan:
    """Ownership along one axis of length ``length`` with ``n`` tiles and chunk size ``chunk``.

    ``owned[c]`` is the half-open range of tile indices chunk ``c`` owns; ``partial[c]`` the
    pixel range their supports cover inside the image; ``read[c]`` the (padded) pixel range
    their full tiles read. ``targets[c]`` lists the chunks that ``partial[c]`` reaches.
    """

    length: int
    chunk: int
    owned: tuple[tuple[int, int], ...]
    partial: tuple[tuple[int, int], ...]
    read: tuple[tuple[int, int], ...]

    @property
    def chunks(self) -> int:
        return len(self.owned)

    def chunk_range(self, c: int) -> tuple[int, int]:
        return c * self.chunk, min((c + 1) * self.chunk, self.length)

    def targets(self, c: int) -> tuple[int, ...]:
        a, b = self.partial[c]
        if a >= b:
            return ()
        return tuple(range(a // self.chunk, (b - 1) // self.chunk + 1))

    def sources(self, c: int) -> tuple[int, ...]:
        """Chunks whose partial reaches chunk ``c`` (including ``c`` itself if it owns tiles)."""
        return tuple(s for s in range(self.chunks) if c in self.targets(s))


def plan_axis(length: int, chunk: int, grid: TileGrid, support: tuple[int, int]) -> AxisPlan:
    """Per-axis ownership for tiles at ``k*S - M`` with support ``[s0, s1)`` inside the tile."""
    stride, margin = grid.stride, grid.margin
    n_tiles = max(1, math.ceil(length / stride))
    n_chunks = math.ceil(length / chunk)
    owner = [max(k * stride - margin + support[0], 0) // chunk for k in range(n_tiles)]
    owned, partial, read = [], [], []
    for c in range(n_chunks):
        ks = [k for k in range(n_tiles) if owner[k] == c]
        if not ks:
            owned.append((0, 0))
            partial.append((0, 0))
            read.append((0, 0))
            continue
        k0, k1 = ks[0], ks[-1] + 1
        owned.append((k0, k1))
        first, last = k0 * stride - margin, (k1 - 1) * stride - margin
        partial.append((max(first + support[0], 0), min(last + support[1], length)))
        read.append((first - grid.border, last + grid.tile + grid.border))
    return AxisPlan(length, chunk, tuple(owned), tuple(partial), tuple(read))


@dataclass(frozen=True)
class ChunkPlan:
    """The 2-D plan: the product of the two axis plans."""

    grid: TileGrid
    blend: Blend
    chunk: int
    #: Tiles not to run (e.g. no tissue under their support); their pixels get no weight and
    #: are written as fill unless another tile covers them.
    skip: frozenset[tuple[int, int]] = frozenset()

    @cached_property
    def ys(self) -> AxisPlan:
        return plan_axis(self.grid.height, self.chunk, self.grid, self.blend.support(self.grid))

    @cached_property
    def xs(self) -> AxisPlan:
        return plan_axis(self.grid.width, self.chunk, self.grid, self.blend.support(self.grid))

    @property
    def shape(self) -> tuple[int, int]:
        return self.ys.chunks, self.xs.chunks

    def chunks(self) -> list[tuple[int, int]]:
        """Every chunk index in row-major order."""
        return [(i, j) for i in range(self.ys.chunks) for j in range(self.xs.chunks)]

    def chunk_window(self, i: int, j: int) -> Window:
        (y0, y1), (x0, x1) = self.ys.chunk_range(i), self.xs.chunk_range(j)
        return Window(y0, x0, y1 - y0, x1 - x0)

    def owned_tiles(self, i: int, j: int) -> list[tuple[int, int]]:
        (r0, r1), (c0, c1) = self.ys.owned[i], self.xs.owned[j]
        tiles = [(r, c) for r in range(r0, r1) for c in range(c0, c1)]
        return [t for t in tiles if t not in self.skip] if self.skip else tiles

    def partial_window(self, i: int, j: int) -> Window:
        (y0, y1), (x0, x1) = self.ys.partial[i], self.xs.partial[j]
        return Window(y0, x0, y1 - y0, x1 - x0)

    def read_window(self, i: int, j: int) -> Window:
        (y0, y1), (x0, x1) = self.ys.read[i], self.xs.read[j]
        return Window(y0, x0, y1 - y0, x1 - x0)

    def targets(self, i: int, j: int) -> list[tuple[int, int]]:
        """Chunks that the partial sum of chunk ``(i, j)``'s tiles reaches, row-major."""
        if not self.owned_tiles(i, j):
            return []
        return [(a, b) for a in self.ys.targets(i) for b in self.xs.targets(j)]

    def sources(self, i: int, j: int) -> list[tuple[int, int]]:
        """Chunks whose tiles contribute to chunk ``(i, j)``."""
        return [
            (a, b) for a in self.ys.sources(i) for b in self.xs.sources(j) if self.owned_tiles(a, b)
        ]

    def support_window(self, row: int, col: int) -> Window:
        """Where tile ``(row, col)`` has non-zero weight, clipped to the image."""
        s0, s1 = self.blend.support(self.grid)
        w = self.grid.tile_window(row, col)
        support = Window(w.y + s0, w.x + s0, s1 - s0, s1 - s0)
        return support.intersection(self.grid.image_window())

    @property
    def tiles_planned(self) -> int:
        return sum(len(self.owned_tiles(i, j)) for i, j in self.chunks())
