"""The global tile grid: where tiles sit, which part of each is trusted, how borders are padded.

One grid covers the whole image, anchored at pixel (0, 0), whatever the chunking; that is what
makes the output independent of chunk size. Along each axis (the same formulas hold for y and x):

* tile size ``T``, overlap ``O`` and stride ``S = T - O``; ``T`` and ``S`` are multiples of the
  model's downsampling factor ``m`` (``2**depth`` for a U-Net), so every tile sees the same
  pooling grid relative to the image;
* tile ``k`` starts at ``origin(k) = k * S - M`` with margin ``M = O // 2``, so it spans
  ``[k*S - M, k*S - M + T)``;
* its *core* is ``[k*S, (k+1)*S)``: the cores tile the axis without gaps or overlap, and the
  first core starts exactly at the image border, which therefore sits ``M`` pixels inside tile 0
  (never on a tile's edge, where blending weights are smallest);
* the number of tiles is ``n = ceil(L / S)`` for an axis of length ``L``, so the cores cover
  ``[0, n*S) ⊇ [0, L)`` (``n = 1`` when the image is smaller than a tile);
* the padded image spans ``[-M, (n-1)*S - M + T)``; pixels outside ``[0, L)`` come from mirror
  (reflect) padding, see :func:`reflect_index`.

The minimum number of tiles for an ``H × W`` image is therefore ``ceil(H/S) * ceil(W/S)``.

Models with valid (unpadded) convolutions return the centre of their input, smaller by a
``border`` ``B`` on each side. Then ``T`` above is the *output* tile; the model reads the input
window grown by ``B`` on every side, ``T + 2B`` pixels, and everything else is unchanged.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from tilerun.errors import OptionError, TilerunWarning
from tilerun.geometry.window import Window


@dataclass(frozen=True)
class TileGrid:
    """Tile positions over an ``height × width`` image (see the module docstring for formulas)."""

    height: int
    width: int
    tile: int
    overlap: int
    border: int = 0
    #: the overlap asked for (fraction or pixels), where it differs from :attr:`overlap`
    overlap_asked: float | int | None = field(default=None, compare=False)
    #: the multiple the overlap was rounded to (the model's downsampling factor)
    multiple: int = field(default=1, compare=False)

    @property
    def overlap_note(self) -> str | None:
        """How the overlap asked for was rounded, for the plan and the summary (None: as
        asked)."""
        if self.overlap_asked is None:
            return None
        asked = self.overlap_asked
        what = (f"{asked:g} of the {self.tile} px tile" if isinstance(asked, float)
                else f"{asked} px")
        return (f"overlap {what} rounded to {self.overlap} px, a multiple of the model's "
                f"downsampling factor {self.multiple}, so tiles stay aligned with its pooling "
                "grid")

    @property
    def input_tile(self) -> int:
        """What the model is fed: ``T + 2B``."""
        return self.tile + 2 * self.border

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @property
    def margin(self) -> int:
        """Pixels of context on the near side of each tile's core: ``M = O // 2``."""
        return self.overlap // 2

    @property
    def rows(self) -> int:
        return max(1, math.ceil(self.height / self.stride))

    @property
    def cols(self) -> int:
        return max(1, math.ceil(self.width / self.stride))

    @property
    def count(self) -> int:
        """Tiles in the grid, which is also the minimum any chunking must compute."""
        return self.rows * self.cols

    def tile_window(self, row: int, col: int) -> Window:
        """Pixels the model sees for tile ``(row, col)``; may extend past the image."""
        s, m = self.stride, self.margin
        return Window(row * s - m, col * s - m, self.tile, self.tile)

    def input_window(self, row: int, col: int) -> Window:
        """The pixels the model reads for tile ``(row, col)``: its window grown by ``B``."""
        w, b = self.tile_window(row, col), self.border
        return Window(w.y - b, w.x - b, w.height + 2 * b, w.width + 2 * b)

    def core_window(self, row: int, col: int) -> Window:
        """The tile's core ``[k*S, (k+1)*S)`` per axis; cores never overlap each other."""
        s = self.stride
        return Window(row * s, col * s, s, s)

    def padded_window(self) -> Window:
        """The mirror-padded image all tiles read from."""
        first = self.input_window(0, 0)
        last = self.input_window(self.rows - 1, self.cols - 1)
        return first.union(last)

    def image_window(self) -> Window:
        return Window(0, 0, self.height, self.width)


def make_grid(
    height: int, width: int, tile: int, overlap: float | int, multiple: int = 1, border: int = 0
) -> TileGrid:
    """Validate options and build a :class:`TileGrid`.

    ``tile`` is the model's input tile; with a valid-convolution ``border`` the output tile is
    ``tile - 2 * border``, and overlap and stride refer to it. A same-padding model's tile must
    be a multiple of ``multiple``; a valid one's sizes are checked by running it.

    ``overlap`` is a fraction of the tile when a float (in ``[0, 1)``), pixels when an int;
    either is rounded to the nearest multiple of ``multiple`` so the stride stays a multiple
    too: ``O = m * round(f * T / m)`` (or ``m * round(O / m)``); the grid keeps what was asked
    when that differs (:attr:`TileGrid.overlap_note`).
    """
    if height < 1 or width < 1:
        raise OptionError("image", f"has no pixels ({height} × {width})")
    if multiple < 1:
        raise OptionError("multiple", f"must be ≥ 1, got {multiple}")
    if border < 0 or tile - 2 * border < max(multiple, 1):
        raise OptionError("--tile", f"{tile} leaves no output with the model's border {border}")
    if border == 0 and (tile < multiple or tile % multiple):
        raise OptionError(
            "--tile",
            f"{tile} is not a positive multiple of the model's downsampling factor {multiple}",
        )
    out_tile = tile - 2 * border
    pixels = _overlap_pixels(overlap, out_tile, multiple)
    exact = overlap * out_tile == pixels if isinstance(overlap, float) else pixels == overlap
    if not 0 <= pixels < out_tile:
        raise OptionError(
            "--overlap", f"{pixels} px must be ≥ 0 and smaller than the output tile {out_tile}"
        )
    if (out_tile - pixels) % multiple:
        raise OptionError(
            "--overlap", f"stride {out_tile - pixels} is not a multiple of {multiple}"
        )
    return TileGrid(height=height, width=width, tile=out_tile, overlap=pixels, border=border,
                    overlap_asked=None if exact else overlap, multiple=multiple)


def _overlap_pixels(overlap: float | int, tile: int, multiple: int) -> int:
    """The overlap in pixels, rounded to the nearest multiple of ``multiple`` (as the README
    promises), with a warning where the rounding changes what was asked: pixels not on the
    model's grid, or a small fraction that comes to no overlap at all."""
    if isinstance(overlap, float):
        if not 0.0 <= overlap < 1.0:
            raise OptionError("--overlap", f"fraction {overlap} is outside [0, 1)")
        pixels = multiple * round(overlap * tile / multiple)
        if pixels == 0 < overlap:
            warnings.warn(
                f"--overlap {overlap:.3g} of the {tile} px tile is {overlap * tile:.2g} px, "
                f"rounded to 0 px (a multiple of the model's downsampling factor {multiple}): "
                "the tiles do not overlap",
                TilerunWarning, stacklevel=3,
            )
        return pixels
    pixels = multiple * round(int(overlap) / multiple)
    if pixels != overlap:
        warnings.warn(
            f"--overlap {overlap} px rounded to {pixels} px (a multiple of the model's "
            f"downsampling factor {multiple})",
            TilerunWarning, stacklevel=3,
        )
    return pixels


def reflect_index(index: np.ndarray, length: int) -> np.ndarray:
    """Map any integer positions onto ``[0, length)`` by mirror reflection without edge repeat.

    This is numpy's ``np.pad(mode="reflect")`` generalised to pads of any width (repeated
    reflection): with period ``p = 2 * (length - 1)``, ``i -> r = |i| mod p`` then
    ``r -> p - r`` when ``r >= length``. A length-1 axis maps everything to 0.
    """
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    r = np.abs(index) % period
    return np.where(r >= length, period - r, r)
