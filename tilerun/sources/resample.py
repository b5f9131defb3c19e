"""Resampling a slide level to an exact pixel size: separable linear (tent) interpolation.

A level is resampled along each axis independently. Output pixel ``c`` sits at level pixel
``u = origin + (c + ½)·step − ½`` (centres aligned), with ``step`` the output pixel in level
pixels; it takes the level pixels within ``radius = max(step, 1)`` weighted by the tent
``1 − |u − i| / radius`` (bilinear when upsampling, an area-like average when downsampling),
normalised to sum to 1. :class:`Axis` says which level pixels a run of output pixels needs.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-9


def taps(
    positions: np.ndarray, start: float, count: int, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Triangle-filter taps: for each position (in source pixel indices, sample ``j`` sits at
    ``start + j``), ``(index, weight)`` arrays of shape ``(len(positions), taps)``; weights sum
    to 1 per row, taps outside ``[0, count)`` carry no weight."""
    q = positions - start
    taps = math.ceil(2 * radius) + 1
    first = np.floor(q - radius).astype(np.int64) + 1
    index = first[:, None] + np.arange(taps)[None, :]
    weight = np.clip(1.0 - np.abs(index - q[:, None]) / radius, 0.0, None)
    weight[(index < 0) | (index >= count)] = 0.0
    total = weight.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    if empty.any():  # no tap in range (cannot happen for in-image windows): nearest sample
        nearest = np.clip(np.rint(q[empty]), 0, count - 1).astype(np.int64)
        index[empty] = nearest[:, None]
        weight[empty] = 0.0
        weight[empty, 0] = 1.0
        total[empty] = 1.0
    return np.clip(index, 0, count - 1), (weight / total).astype(np.float32)


def apply_taps(image: np.ndarray, axis: int, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Filter a float32 ``(bands, h, w)`` image along ``axis`` (1 = rows, 2 = columns)."""
    out: np.ndarray | None = None
    for k in range(index.shape[1]):
        w = weight[:, k]
        if not w.any():
            continue
        taken = np.take(image, index[:, k], axis=axis)
        term = taken * (w[None, :, None] if axis == 1 else w[None, None, :])
        out = term if out is None else out + term
    if out is None:  # every row of weights sums to 1, so some column has weight
        raise ValueError("resampling weights are all zero")
    return out


class Axis:
    """Sampling plan along one axis: output index ``c`` ↦ level-``L`` pixel index
    ``u = origin + (c + 0.5)·step − 0.5`` (``origin`` in level-``L`` corner coordinates,
    ``step`` level-``L`` pixels per output pixel), on a level ``extent`` pixels long."""

    def __init__(self, origin: float, step: float, extent: int, downsample: float) -> None:
        self.origin = origin
        self.step = step
        self.extent = extent
        self.downsample = downsample
        self.radius = max(step, 1.0)

    def positions(self, first: int, count: int) -> np.ndarray:
        c = np.arange(first, first + count, dtype=np.float64)
        if self.step == 1.0:  # exact when origin is an integer (level=N)
            return self.origin + c
        return self.origin + (c + 0.5) * self.step - 0.5

    def read_span(self, u: np.ndarray) -> tuple[int, float, int, bool]:
        """``(location, start, count, exact)``: level-0 location to read from, the level-L
        index of its first sample, how many samples, and whether they are the output as is."""
        d = self.downsample
        if self.step == 1.0 and np.all(u == np.round(u)):
            first = float(u[0])
            location = round(first * d)
            if location / d == first:
                return location, first, len(u), True
        lo = max(float(u.min()) - self.radius, 0.0)
        # Start on the level-0 pixel nearest to a stored level-L pixel at or before ``lo``:
        # for an integer downsample OpenSlide then returns stored pixels untouched, otherwise
        # it interpolates by at most half a level-0 pixel (≤ 0.5 / d level-L pixels).
        location = round(math.floor(lo + _EPS) * d)
        start = location / d
        # Samples up to ``max(u) + R`` and inside the level: positions below ``extent``, which
        # takes in the one straddling the far edge when ``start`` is fractional (see coverage).
        needed = math.floor(float(u.max()) + self.radius - start + _EPS) + 1
        inside = math.ceil(self.extent - start - _EPS)
        count = max(min(needed, inside), 1)
        return location, start, count, False

    def coverage(self, start: float, count: int) -> np.ndarray | None:
        """How much of each sample OpenSlide drew from inside the level (None: all of it).

        A sample at fractional position ``q`` in ``(extent − 1, extent)`` is blended with the
        transparent outside by OpenSlide: its alpha is scaled by ``extent − q`` while its
        (un-premultiplied) colour is the last stored pixel's. Dividing that factor out of the
        alpha extends the level by its edge pixel, as clamp-to-edge resampling would.
        """
        last = start + count - 1
        if last <= self.extent - 1:
            return None
        positions = start + np.arange(count, dtype=np.float64)
        return np.clip(self.extent - positions, _EPS, 1.0)
