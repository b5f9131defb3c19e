"""What chunk tasks compute: a chunk's owned tiles as partial sums (through the compute
stage), the pieces kept for resume, and the assembly of a chunk from the pieces reaching it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from tilerun.classes.probabilities import check_activation, probabilities_into
from tilerun.engine.compute import ChunkWork, ComputeStage, canvas_window
from tilerun.engine.plan import ChunkPlan
from tilerun.geometry import Window
from tilerun.sources import Source

if TYPE_CHECKING:
    from tilerun.report.collect import ChunkStats, StatsPlan


@dataclass(frozen=True)
class Partial:
    """Weighted sums over ``window``: ``num = Σ w·z`` (classes, h, w), ``den = Σ w``, validity.

    ``valid`` is None when every pixel of the window is valid (the common case: no nodata).
    ``stats``: what the chunk's tiles task measured for the run report (on its own piece only).
    """

    window: Window
    num: np.ndarray
    den: np.ndarray
    valid: np.ndarray | None
    stats: ChunkStats | None = None

    def crop(self, window: Window, copy: bool = True) -> Partial:
        """The part inside ``window``; copied (unless ``copy=False``) so that a thin strip
        does not pin the whole arrays while it waits for a later chunk."""
        part = self.window.intersection(window)
        ys, xs = part.slices(self.window)
        keep = np.copy if copy else np.asarray
        valid = None if self.valid is None else keep(self.valid[ys, xs])
        return Partial(part, keep(self.num[:, ys, xs]), keep(self.den[ys, xs]), valid)


def carry_from(piece: Partial) -> np.ndarray:
    """What a finished chunk keeps of a piece for resume: ``num``, plus a validity plane
    (1/0) when some pixel is invalid. ``den`` is left out: it follows from the geometry
    (:func:`region_den`), and leaving it out saves a fifth of the bytes for 4 classes."""
    if piece.valid is None:
        return piece.num
    return np.concatenate([piece.num, piece.valid[None].astype(np.float32)])


def partial_from_carry(window: Window, data: np.ndarray, den: np.ndarray, classes: int) -> Partial:
    """The inverse of :func:`carry_from`, given the piece's ``den``."""
    valid = data[classes] > 0.5 if data.shape[0] > classes else None
    return Partial(window, data[:classes], den, valid)


def tile_offsets(plan: ChunkPlan, index: tuple[int, int]) -> tuple[Window, np.ndarray]:
    """The chunk's padded read window and its owned tiles' input corners inside it."""
    read = plan.read_window(*index)
    corners = [plan.grid.input_window(r, c) for r, c in plan.owned_tiles(*index)]
    offsets = np.array([(w.y - read.y, w.x - read.x) for w in corners], dtype=np.int64)
    return read, offsets.reshape(-1, 2)


def chunk_work(source: Source, plan: ChunkPlan, index: tuple[int, int]) -> ChunkWork:
    """Read the chunk's padded window once and say where its owned tiles sit in it."""
    read, offsets = tile_offsets(plan, index)
    pixels, valid = source.read_padded(read)
    return ChunkWork(index, read, pixels, None if valid.all() else valid, offsets)


def region_den(plan: ChunkPlan, index: tuple[int, int], read: Window,
               offsets: np.ndarray) -> np.ndarray:
    """``Σ w`` of the chunk's owned tiles (at ``offsets`` in ``read``, as given by
    :func:`tile_offsets`) over its partial window (``plan.partial_window``)."""
    canvas = canvas_window(read, plan.grid.border)
    den = weight_sum(plan.blend.profile(plan.grid), offsets, (canvas.height, canvas.width))
    return den[plan.partial_window(*index).slices(canvas)]


def core_region(plan: ChunkPlan, index: tuple[int, int]) -> tuple[Window, np.ndarray | None]:
    """The input pixels chunk ``index`` counts in the run report's input statistics: the cores
    ``[k·S, (k+1)·S)`` (per axis, see :mod:`tilerun.geometry.grid`) of the tiles it owns,
    clipped to the image, and a mask (None: all of them) that leaves out skipped tiles' cores.

    Cores tile the image without overlap, each lies inside its tile's read window, and every
    tile is owned by one chunk: so each pixel under a tile that ran is counted exactly once,
    from pixels the chunk has read anyway.
    """
    (r0, r1), (c0, c1) = plan.ys.owned[index[0]], plan.xs.owned[index[1]]
    stride = plan.grid.stride
    core = Window(r0 * stride, c0 * stride, (r1 - r0) * stride, (c1 - c0) * stride)
    core = core.intersection(plan.grid.image_window())
    owned = plan.owned_tiles(*index)
    if len(owned) == (r1 - r0) * (c1 - c0):
        return core, None
    run = np.zeros((r1 - r0, c1 - c0), bool)
    for r, c in owned:
        run[r - r0, c - c0] = True
    rows = np.arange(core.y, core.bottom) // stride - r0
    cols = np.arange(core.x, core.right) // stride - c0
    return core, run[np.ix_(rows, cols)]


def run_tiles(
    source: Source, plan: ChunkPlan, index: tuple[int, int], compute: ComputeStage,
    stats: StatsPlan | None = None,
) -> tuple[Partial, ...]:
    """The chunk's owned tiles, blended by the compute stage, as one piece per target chunk.

    Each write task receives only the strip it needs (``plan.targets``), so the rest can be
    freed early; the chunk's own piece is a view (it is written next), the others are copies.
    With ``stats``, the input statistics of :func:`core_region` are taken from the pixels
    already read while the model runs, and the own piece carries them, with the model call
    durations drained from the compute stage.
    """
    work = chunk_work(source, plan, index)
    future = compute.submit(work)
    measured = None
    if stats is not None:
        core, mask = core_region(plan, index)
        ys, xs = core.slices(work.read)
        core_valid = None if work.valid is None else work.valid[:, ys, xs]
        measured = stats.observe_input((core.y, core.x), work.pixels[:, ys, xs], core_valid,
                                       mask)
    canvas = future.result()
    region = plan.partial_window(*index)
    num = canvas[(slice(None), *region.slices(work.canvas_window(plan.grid.border)))]
    valid = None
    if work.valid is not None:
        valid = np.asarray(work.valid[(slice(None), *region.slices(work.read))].any(axis=0))
    den = region_den(plan, index, work.read, work.offsets)
    whole = Partial(region, num, den, valid)
    targets = plan.targets(*index)
    pieces = [whole.crop(plan.chunk_window(*t), copy=t != index) for t in targets]
    if measured is not None:
        own = targets.index(index)
        timings = tuple(compute.drain_timings())
        pieces[own] = replace(pieces[own], stats=replace(measured, model_seconds=timings))
    return tuple(pieces)


def weight_sum(profile: np.ndarray, offsets: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``den = Σ_t w`` over tiles at ``offsets``, for the separable window ``w = p ⊗ p``.

    The weights do not depend on the logits, so the host computes them from the geometry.
    When the tiles form a full grid (rows × columns; no tile skipped) the sum is separable,
    ``den(y, x) = (Σ_r p(y - y_r)) · (Σ_c p(x - x_c))``: one outer product instead of a
    ``T × T`` add per tile. The 1-D sums are taken in float64, the product in float32.
    """
    h, w = int(shape[0]), int(shape[1])
    edge = len(profile)
    p = profile.astype(np.float64)
    rows, cols = np.unique(offsets[:, 0]), np.unique(offsets[:, 1])
    if len(rows) * len(cols) == len(offsets):
        dy, dx = np.zeros(h), np.zeros(w)
        for y in rows.tolist():
            dy[y: y + edge] += p
        for x in cols.tolist():
            dx[x: x + edge] += p
        return np.outer(dy.astype(np.float32), dx.astype(np.float32))
    den = np.zeros((h, w))
    window = np.outer(p, p)
    for y, x in offsets.tolist():
        den[y: y + edge, x: x + edge] += window
    return den.astype(np.float32)


@dataclass(frozen=True)
class ChunkResult:
    """What one write task reports back (small: it travels to the scheduler)."""

    index: tuple[int, int]
    tiles: int
    pixels: int
    valid_pixels: int
    #: sums and small histograms for the run report (:mod:`tilerun.report.collect`)
    stats: ChunkStats | None = None


def assemble(window: Window, pieces: list[Partial], classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum the pieces reaching ``window``: blended logits (NaN where invalid), validity.

    ``logits = num · (1 / den)``: the reciprocal is taken on the 2-D weights (with NaN where
    a pixel is invalid or covered by no tile), so the ``classes``-deep array gets a single
    in-place multiply instead of a masked divide plus a masked fill.
    """
    num = np.empty((classes, window.height, window.width), np.float32)
    den = np.empty((window.height, window.width), np.float32)
    valid = np.zeros((window.height, window.width), bool)
    # The largest piece (the chunk's own tiles) is copied in; only the rest is zeroed first.
    pieces = sorted(pieces, key=lambda p: p.window.size, reverse=True)
    first = pieces[0].window.slices(window) if pieces else (slice(0, 0), slice(0, 0))
    _zero_outside(num, *first)
    _zero_outside(den, *first)
    for n, piece in enumerate(pieces):
        ys, xs = piece.window.slices(window)
        if n == 0:
            num[:, ys, xs] = piece.num
            den[ys, xs] = piece.den
        else:
            num[:, ys, xs] += piece.num
            den[ys, xs] += piece.den
        if piece.valid is None:
            valid[ys, xs] = True
        else:
            valid[ys, xs] |= piece.valid
    valid &= den > 0  # den is 0 only where tiles were skipped (no tissue under them)
    inverse = np.divide(1.0, den, out=np.full_like(den, np.nan), where=valid)
    num *= inverse
    return num, valid


def _zero_outside(array: np.ndarray, ys: slice, xs: slice) -> None:
    """Zero the last two axes of ``array`` outside rows ``ys`` × columns ``xs``."""
    array[..., : ys.start, :] = 0
    array[..., ys.stop :, :] = 0
    array[..., ys, : xs.start] = 0
    array[..., ys, xs.stop :] = 0


#: Bytes of float32 scratch per block of rows in :func:`probabilities_from_logits`: the
#: block's passes then run in cache (measured ~20 % faster than whole-chunk passes).
PROBABILITY_BLOCK_BYTES = 1 << 18


def probabilities_from_logits(
    logits: np.ndarray, valid: np.ndarray, activation: str, scale: int, fill: int
) -> np.ndarray:
    """Class probabilities as uint8 codes ``round(p · scale)`` (classes, h, w); ``fill`` where
    invalid. ``logits`` is left unchanged.

    ``activation``: ``softmax`` or ``sigmoid``, as :mod:`tilerun.classes.probabilities` defines
    them. Vectorised float32 passes, in place on a small scratch block of rows (a Python loop
    over row blocks, never over pixels), about 2 ns per pixel and class: subtract, exp, sum,
    one multiply by ``scale / Σ``, and ``+ 0.5`` fused with the cast to uint8 (which
    truncates: round half up). Valid pixels get codes 0 … ``scale``, never
    ``fill`` (> ``scale``), since ``p ≤ 1``.
    """
    check_activation(activation)
    classes, height, width = logits.shape
    codes = np.empty(logits.shape, np.uint8)
    rows = max(1, PROBABILITY_BLOCK_BYTES // (4 * classes * max(width, 1)))
    scratch = np.empty((classes, min(rows, height), width), np.float32)
    with np.errstate(invalid="ignore"):  # invalid: NaN (nodata) → uint8
        for y in range(0, height, rows):
            z = logits[:, y: y + rows]
            work = probabilities_into(z, scratch[:, : z.shape[1]], activation, scale)
            np.add(work, 0.5, out=codes[:, y: y + rows], casting="unsafe")
    if not valid.all():
        codes[:, ~valid] = fill
    return codes
