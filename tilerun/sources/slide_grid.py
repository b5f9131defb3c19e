"""The output grid of a slide source: which level serves a request, and the arithmetic.

This module owns level/mpp selection and the resolution arithmetic that ties an output pixel
to level-0 and level-``L`` coordinates; it reads no pixels and opens no file, so every
formula below is checked on plain numbers (:class:`~tilerun.sources.slide_props.SlideProperties`
in, :class:`SlideGrid` out). Reading and resampling by that plan live in
:mod:`tilerun.sources.slide` and :mod:`tilerun.sources.resample`.

Output grid
-----------
The grid covers the scanned region only: the rectangle of the ``openslide.bounds-*``
properties when the slide has them (level-0 pixels), the whole of level 0 otherwise. Call it
``(bx, by, bw, bh)``.

Coordinates are *corner* coordinates: level-0 pixel ``(i, j)`` spans ``[i, i + 1) × [j, j + 1)``
and its centre is at ``(i + 0.5, j + 0.5)``. A level-``L`` pixel ``k`` spans level-0
``[k·d_L, (k + 1)·d_L)``, where ``d_L`` is OpenSlide's downsample of that level (which may be
non-integer, e.g. 4.0161; OpenSlide places a level with this one factor on both axes, and so
does tilerun). :attr:`SlideGrid.level0_affine` ``(a, b, c, d, e, f)`` maps output pixel
corner ``(col, row)`` to the level-0 corner ``(x0, y0) = (a·col + b·row + c, d·col + e·row + f)``,
as a GDAL/rasterio transform does; ``b = d = 0``.

``mpp=X`` (resampled):
    ``s_x = X / mpp_x``, ``s_y = X / mpp_y`` (level-0 pixels per output pixel);
    ``width = floor(bw / s_x + 0.5)``, ``height = floor(bh / s_y + 0.5)`` (at least 1);
    ``x0 = bx + col·s_x``, ``y0 = by + row·s_y`` — affine ``(s_x, 0, bx, 0, s_y, by)``.
    The centre of output pixel ``col`` is at level-0 corner coordinate
    ``bx + (col + 0.5)·s_x``, i.e. at level-0 *pixel index* ``bx + (col + 0.5)·s_x − 0.5``,
    and at level-``L`` pixel index ``u = (bx + (col + 0.5)·s_x) / d_L − 0.5``.
    The level read is the coarsest whose pixel size is at most ``X·(1 + MPP_TOLERANCE)``.

``level=N`` (as stored, no resampling):
    ``ix0 = floor(bx / d_N)``, ``ix1 = min(ceil((bx + bw) / d_N), level width)`` (same for y);
    output pixel ``col`` *is* stored level-``N`` pixel ``ix0 + col``;
    ``x0 = (ix0 + col)·d_N`` — affine ``(d_N, 0, ix0·d_N, 0, d_N, iy0·d_N)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from tilerun.errors import OptionError, TilerunWarning
from tilerun.sources.resample import Axis
from tilerun.sources.slide_format import SlideLevelError, SlideMppError
from tilerun.sources.slide_props import SlideProperties

#: A level is "at or finer than" a target mpp when its mpp ≤ target · (1 + MPP_TOLERANCE):
#: scanners round their mpp (0.2282 · 4 = 0.9127 serves a request for 0.912).
MPP_TOLERANCE = 0.02

#: Asking for pixels finer than level 0 by more than this factor warns (upsampling invents
#: no detail).
UPSAMPLE_WARN_FACTOR = 1.5

#: Level-0 pixels larger than this (µm) are almost certainly a 72/96 dpi screen default.
IMPLAUSIBLE_MPP = 100.0

_EPS = 1e-9

Affine = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class SlideGrid:
    """The output grid: the level read, how output pixels map onto it, and its size.

    ``x`` and ``y`` are the per-axis sampling plans (:class:`~tilerun.sources.resample.Axis`);
    ``shape`` is ``(3, height, width)``; ``mpp`` is µm per output pixel, None when the
    slide's mpp is unknown.
    """

    level: int
    downsample: float
    resampled: bool
    x: Axis
    y: Axis
    shape: tuple[int, int, int]
    level0_affine: Affine
    mpp: float | None


def level_grid(name: str, props: SlideProperties, level: int) -> SlideGrid:
    """The grid of pyramid level ``level`` as stored, over the scanned region.

    Raises :class:`~tilerun.errors.OptionError` when ``level`` is not an integer and
    :class:`~tilerun.sources.slide_format.SlideLevelError` when the slide lacks it.
    """
    count = len(props.level_dimensions)
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise OptionError("--level", f"must be an integer, not {level!r}")
    if not 0 <= level < count:
        raise SlideLevelError(
            name, f"has {count} level(s) (0..{count - 1}); --level {level} is out of range"
        )
    level = int(level)
    d = props.level_downsamples[level]
    lw, lh = props.level_dimensions[level]
    bx, by, bw, bh = props.bounds
    ix0 = min(math.floor(bx / d + _EPS), lw - 1)
    iy0 = min(math.floor(by / d + _EPS), lh - 1)
    ix1 = max(min(math.ceil((bx + bw) / d - _EPS), lw), ix0 + 1)
    iy1 = max(min(math.ceil((by + bh) / d - _EPS), lh), iy0 + 1)
    mpp0 = props.mpp0
    return SlideGrid(
        level=level,
        downsample=d,
        resampled=False,
        x=Axis(float(ix0), 1.0, lw, d),
        y=Axis(float(iy0), 1.0, lh, d),
        shape=(3, iy1 - iy0, ix1 - ix0),
        level0_affine=(d, 0.0, ix0 * d, 0.0, d, iy0 * d),
        mpp=math.sqrt(mpp0[0] * mpp0[1]) * d if mpp0 is not None else None,
    )


def mpp_grid(name: str, props: SlideProperties, target: float) -> SlideGrid:
    """The grid resampled to ``target`` µm per output pixel, over the scanned region.

    Raises :class:`~tilerun.sources.slide_format.SlideMppError` when the slide's mpp is
    unknown. Warns (:class:`~tilerun.errors.TilerunWarning`, attributed to whoever created
    the :class:`SlideSource`: called from its set-up, two frames below) when the declared
    level-0 mpp is implausible or the request upsamples by more than
    :data:`UPSAMPLE_WARN_FACTOR`.
    """
    if props.mpp0 is None:
        raise SlideMppError(name, "has no microns-per-pixel metadata; pass --slide-mpp or --level")
    mx, my = props.mpp0
    if props.mpp0_origin == "metadata" and max(mx, my) > IMPLAUSIBLE_MPP:
        warnings.warn(
            f"{name}: level-0 pixel size {max(mx, my):g} µm is implausible for a slide "
            "(a 72/96 dpi default?); pass --slide-mpp to set it",
            TilerunWarning,
            stacklevel=4,
        )
    finer = max(mx, my) / target
    if finer > UPSAMPLE_WARN_FACTOR:
        warnings.warn(
            f"{name}: --mpp {target:g} is {finer:.2f}× finer than the slide's level 0 "
            f"({max(mx, my):g} µm); upsampling adds no detail",
            TilerunWarning,
            stacklevel=4,
        )
    limit = target * (1.0 + MPP_TOLERANCE)
    level = 0
    for i, d in enumerate(props.level_downsamples):
        if max(mx, my) * d <= limit and d > props.level_downsamples[level]:
            level = i
    d = props.level_downsamples[level]
    lw, lh = props.level_dimensions[level]
    bx, by, bw, bh = props.bounds
    sx, sy = target / mx, target / my
    width = max(math.floor(bw / sx + 0.5), 1)
    height = max(math.floor(bh / sy + 0.5), 1)
    return SlideGrid(
        level=level,
        downsample=d,
        resampled=True,
        x=Axis(bx / d, sx / d, lw, d),
        y=Axis(by / d, sy / d, lh, d),
        shape=(3, height, width),
        level0_affine=(sx, 0.0, float(bx), 0.0, sy, float(by)),
        mpp=target,
    )


def micron_affine(level0_affine: Affine, mpp0: tuple[float, float] | None) -> list[float] | None:
    """``level0_affine`` scaled by level-0 µm per pixel: output pixel corner → microns from
    the level-0 origin; None when the mpp is unknown."""
    if mpp0 is None:
        return None
    a, b, c, d, e, f = level0_affine
    mx, my = mpp0
    return [a * mx, b * mx, c * mx, d * my, e * my, f * my]
