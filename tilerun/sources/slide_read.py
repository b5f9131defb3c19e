"""Reading output windows of a slide: per-thread OpenSlide handles, compositing, resampling.

:class:`LevelReader` turns an output window into RGB ``uint8`` pixels from one pyramid level,
following the sampling plan of :mod:`tilerun.sources.slide_grid`. It owns everything that
touches pixels at read time, and nothing about which level or grid was chosen, so the
:class:`~tilerun.sources.slide.SlideSource` that holds it stays a thin, picklable
description of the slide.

Reading
-------
OpenSlide's ``read_region(location, level, size)`` takes the *level-0* corner of the first
pixel and renders level ``L`` from the continuous level-``L`` position ``location / d_L``:
when that is not an integer (non-integer downsample), OpenSlide itself interpolates
bilinearly. tilerun therefore never assumes a read starts on a stored pixel: with ``lo`` the
first level-``L`` pixel index the filter needs, it reads from the integer level-0 location
``x_read = round(floor(lo)·d_L)``, knows that sample ``j`` lies at level-``L`` pixel index
``p + j`` with ``p = x_read / d_L`` exactly, and resamples the samples to the output positions
``u``. For an integer downsample ``p`` is an integer and OpenSlide returns stored pixels
untouched; otherwise ``|p − floor(lo)| ≤ 0.5 / d_L`` (half a level-0 pixel), the least
interpolation OpenSlide's integer location allows. When every ``u − p`` is an integer and no
scale change is asked (``level=N`` where ``(ix0 + col)·d_N`` is an integer — always for
integer downsamples — or an ``mpp`` equal to a level's on such a grid) the read is returned as
is, bit for bit what ``read_region`` gives.

Resampling is separable, in float32, with a triangle (tent) filter of half-width
``R = max(r, 1)`` source pixels, ``r`` = source pixels per output pixel: plain bilinear when
upsampling or at the same scale, an antialiased linear filter (as PIL's BILINEAR reduce and
``torch.nn.functional.interpolate(..., antialias=True)``) when downsampling, so factors above 2
do not alias. Taps outside the level are dropped and the weights renormalised
(:mod:`tilerun.sources.resample`).

RGBA is composited over the slide's background colour (``openslide.background-color``, white
when absent) in float before resampling, then rounded to ``uint8``: transparent areas become
background, never black, and count as valid data.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from tilerun.geometry import Window
from tilerun.sources.resample import Axis, apply_taps, taps
from tilerun.sources.slide_format import SlideError, import_openslide, open_handle


class LevelReader:
    """Reads output windows from pyramid level ``level`` of the slide at ``path``.

    ``x`` and ``y`` are the grid's sampling plans; ``background`` is the RGB colour
    transparent pixels are composited over. Each thread opens its own handle on first use.
    """

    def __init__(
        self,
        path: Path,
        name: str,
        level: int,
        background: tuple[int, int, int],
        x: Axis,
        y: Axis,
    ) -> None:
        self.path = path
        self.name = name
        self.level = level
        self.x = x
        self.y = y
        self._background = np.array(background, np.float32)[:, None, None]
        self._local = threading.local()

    def _slide(self) -> Any:
        slide = getattr(self._local, "slide", None)
        if slide is None:
            slide = open_handle(self.path, self.name)
            self._local.slide = slide
        return slide

    def _read_rgba(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        openslide = import_openslide()
        slide = self._slide()
        try:
            image = slide.read_region((x, y), self.level, (width, height))
        except openslide.OpenSlideError as err:
            # an OpenSlide handle stays in error once a read fails: drop this thread's handle
            self._local.slide = None
            raise SlideError(
                self.name,
                f"OpenSlide failed to read level {self.level} at ({x}, {y}) "
                f"size {width}×{height}: {err}",
            ) from err
        return np.asarray(image)

    def _composite(
        self,
        rgba: np.ndarray,
        cover_y: np.ndarray | None = None,
        cover_x: np.ndarray | None = None,
    ) -> np.ndarray:
        """RGBA ``(h, w, 4)`` over the background colour: float32 ``(3, h, w)``. ``cover_*``
        (see :meth:`Axis.coverage`) undo OpenSlide's fading of samples at the level edge."""
        rgb = np.moveaxis(rgba[..., :3], -1, 0).astype(np.float32)
        alpha = rgba[..., 3]
        if alpha.min() == 255:
            return rgb
        a = alpha.astype(np.float32) / np.float32(255)
        if cover_y is not None:
            a /= cover_y.astype(np.float32)[:, None]
        if cover_x is not None:
            a /= cover_x.astype(np.float32)[None, :]
        a = np.minimum(a, 1.0)[None]
        return rgb * a + self._background * (1 - a)

    def read(self, window: Window) -> np.ndarray:
        """RGB ``uint8`` ``(3, h, w)`` of an output ``window`` the caller has checked lies
        inside the grid: the read as is when exact, else composited and resampled."""
        ux = self.x.positions(window.x, window.width)
        uy = self.y.positions(window.y, window.height)
        lx, sx, nx, exact_x = self.x.read_span(ux)
        ly, sy, ny, exact_y = self.y.read_span(uy)
        rgba = self._read_rgba(lx, ly, nx, ny)
        if exact_x and exact_y:
            if rgba[..., 3].min() == 255:
                return np.ascontiguousarray(np.moveaxis(rgba[..., :3], -1, 0))
            return _to_uint8(self._composite(rgba))
        image = self._composite(rgba, self.y.coverage(sy, ny), self.x.coverage(sx, nx))
        if not exact_y:
            image = apply_taps(image, 1, *taps(uy, sy, ny, self.y.radius))
        if not exact_x:
            image = apply_taps(image, 2, *taps(ux, sx, nx, self.x.radius))
        return _to_uint8(image)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
