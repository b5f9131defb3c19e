"""Streaming per-band statistics of the input pixels, in fixed bins, summed chunk by chunk.

Each chunk task adds up its own share of the pixels (the cores of the tiles it owns, see
:func:`tilerun.engine.partial.core_region`, so every pixel under a tile that ran is counted
exactly once), on the lattice of :mod:`tilerun.report.lattice`, into an :class:`InputStats`:
per band ``b``

* ``n_b``: valid values (nodata and non-finite values are left out);
* ``s1_b = Σ (x − c_b)`` and ``s2_b = Σ (x − c_b)²`` in float64, shifted by ``c_b`` (the
  training mean when the spec has one, else the middle of the bins) so that no precision is
  lost to cancellation; then ``mean = c + s1/n`` and ``std = √(s2/n − (s1/n)²)`` (population
  std, numpy's ``ddof=0``);
* ``min``/``max``;
* a histogram over :data:`BINS` equal bins on ``[lo_b, hi_b)`` plus two counts for values
  below ``lo_b`` and at or above ``hi_b``.

The bins are fixed before the run (:func:`input_bins`), so chunk histograms add up:
``[μ − 4σ, μ + 4σ)`` of the spec's training ``mean``/``std`` (clipped to the range of an
integer pixel type), else the whole range of an integer pixel type, else ``[0, 1)`` (floats
whose spec gives no statistics are taken as already scaled, as the normaliser does).

Integer pixels of at most 16 bits are first counted per value (``np.bincount``), and every
sum follows from those counts exactly; other types are summed directly.

When the run applies the input's scale/offset (:mod:`tilerun.models.scaling`), everything is
in physical values ``x · gain + bias``, as the model sees them and as its training statistics
are: the bins are mapped, and the values (the distinct ones, for counted integers) converted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: histogram bins per band (plus one below and one above the range)
BINS = 64
#: half-width of the histogram range in training standard deviations
HALF_WIDTH_SIGMAS = 4.0


@dataclass(frozen=True)
class InputBins:
    """Per band: histogram range ``[lo, hi)`` in :data:`BINS` bins, and the shift ``c``."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]
    centre: tuple[float, ...]
    bins: int = BINS
    #: stored value → physical value per band, ``x · gain + bias`` (None: as stored)
    gain: tuple[float, ...] | None = None
    bias: tuple[float, ...] | None = None

    def physical(self, band: int, values: np.ndarray) -> np.ndarray:
        """float64 ``values`` as the model sees them (a new array when converted)."""
        if self.gain is None or self.bias is None:
            return values
        return values * self.gain[band] + self.bias[band]

    @property
    def bands(self) -> int:
        return len(self.lo)

    def edges(self, band: int) -> np.ndarray:
        """The ``bins + 1`` bin edges of ``band``."""
        return np.linspace(self.lo[band], self.hi[band], self.bins + 1)

    def slots(self, band: int, values: np.ndarray) -> np.ndarray:
        """Histogram slot per value: 0 below ``lo``, ``1 … bins`` inside, ``bins + 1`` from
        ``hi`` on; ``floor((x − lo) / w) + 1`` with ``w = (hi − lo) / bins``."""
        lo, hi = self.lo[band], self.hi[band]
        width = (hi - lo) / self.bins
        index = np.floor((values.astype(np.float64) - lo) / width)
        np.clip(index, -1, self.bins, out=index)
        return index.astype(np.intp) + 1


def input_bins(mean: Any, std: Any, bands: int, dtype: np.dtype[Any],
               scaling: Any = None) -> InputBins:
    """The fixed bins for ``bands`` bands of ``dtype`` (see the module docstring).

    ``mean``/``std``: the model spec's training statistics per band, or None. ``scaling``:
    the :class:`~tilerun.sources.ScaleOffset` the run applies, or None.
    """
    lo = np.zeros(bands)
    hi = np.ones(bands)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        lo[:], hi[:] = float(info.min), float(info.max) + 1.0
    elif dtype.kind == "b":
        lo[:], hi[:] = 0.0, 2.0
    gain = bias = None
    if scaling is not None:
        gain, bias = tuple(scaling.scales), tuple(scaling.offsets)
        if dtype.kind in "uib":
            ranges = [scaling.physical_range(b, lo[b], hi[b]) for b in range(bands)]
            lo, hi = np.array([r[0] for r in ranges]), np.array([r[1] for r in ranges])
    if mean is not None and std is not None:
        m, s = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        below, above = m - HALF_WIDTH_SIGMAS * s, m + HALF_WIDTH_SIGMAS * s
        if dtype.kind in "uib":
            below, above = np.maximum(below, lo), np.minimum(above, hi)
        usable = above > below  # a mean far outside the type's range: keep the type's range
        lo, hi = np.where(usable, below, lo), np.where(usable, above, hi)
        centre = m
    else:
        centre = (lo + hi) / 2
    return InputBins(tuple(lo.tolist()), tuple(hi.tolist()), tuple(np.asarray(centre).tolist()),
                     gain=gain, bias=bias)


@dataclass(frozen=True)
class InputStats:
    """Sums over the input pixels counted so far; add two with ``+`` (see the module docstring).

    Arrays: ``count``, ``s1``, ``s2``, ``low``, ``high`` ``(bands,)``; ``hist``
    ``(bands, bins + 2)``: below, the bins, at or above the top.
    """

    count: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    low: np.ndarray
    high: np.ndarray
    hist: np.ndarray

    @classmethod
    def empty(cls, bins: InputBins) -> InputStats:
        b = bins.bands
        return cls(np.zeros(b, np.int64), np.zeros(b), np.zeros(b), np.full(b, np.inf),
                   np.full(b, -np.inf), np.zeros((b, bins.bins + 2), np.int64))

    def __add__(self, other: InputStats) -> InputStats:
        return InputStats(self.count + other.count, self.s1 + other.s1, self.s2 + other.s2,
                          np.minimum(self.low, other.low), np.maximum(self.high, other.high),
                          self.hist + other.hist)

    def mean(self, centre: tuple[float, ...]) -> np.ndarray:
        """``c + s1 / n`` per band (NaN where nothing was counted)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(centre) + self.s1 / self.count

    def std(self) -> np.ndarray:
        """``√(s2/n − (s1/n)²)`` per band (NaN where nothing was counted)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            m1 = self.s1 / self.count
            return np.sqrt(np.maximum(self.s2 / self.count - m1 * m1, 0.0))


def observe_input(bins: InputBins, pixels: np.ndarray, valid: np.ndarray | None,
                  mask: np.ndarray | None = None) -> InputStats:
    """The statistics of ``pixels`` ``(bands, h, w)``: only where ``valid`` (same shape, None:
    all) and ``mask`` (``(h, w)``, None: all) are True, and the value is finite."""
    stats = InputStats.empty(bins)
    exact = pixels.dtype.kind in "uib" and pixels.dtype.itemsize <= 2
    for b in range(pixels.shape[0]):
        keep = mask
        if valid is not None:
            keep = valid[b] if keep is None else keep & valid[b]
        values = pixels[b].ravel() if keep is None else pixels[b][keep]
        if exact:
            _by_value(bins, b, values, stats)
        else:
            _direct(bins, b, values, stats)
    return stats


def _by_value(bins: InputBins, band: int, values: np.ndarray, into: InputStats) -> None:
    """Counts per value, then every sum from the counts (integers of ≤ 16 bits, bool)."""
    if values.dtype.kind == "b":
        values = values.view(np.uint8)
    offset = -int(np.iinfo(values.dtype).min) if values.dtype.kind == "i" else 0
    per_value = np.bincount(values.astype(np.intp) + offset if offset else values)
    present = np.flatnonzero(per_value)
    if present.size == 0:
        return
    counts = per_value[present]
    x = bins.physical(band, present.astype(np.float64) - offset)
    d = x - bins.centre[band]
    into.count[band] += counts.sum()
    into.s1[band] += counts @ d
    into.s2[band] += counts @ (d * d)
    into.low[band] = min(into.low[band], float(x.min()))
    into.high[band] = max(into.high[band], float(x.max()))
    into.hist[band] += np.bincount(bins.slots(band, x), weights=counts,
                                   minlength=bins.bins + 2).astype(np.int64)


def _direct(bins: InputBins, band: int, values: np.ndarray, into: InputStats) -> None:
    """Sums over the values themselves (floats, wide integers), non-finite values left out."""
    x = values.astype(np.float64)
    if x.dtype.kind == "f":
        finite = np.isfinite(x)
        if not finite.all():
            x = x[finite]
    if x.size == 0:
        return
    x = bins.physical(band, x)
    d = x - bins.centre[band]
    into.count[band] += x.size
    into.s1[band] += d.sum()
    into.s2[band] += np.dot(d, d)
    into.low[band] = min(into.low[band], float(x.min()))
    into.high[band] = max(into.high[band], float(x.max()))
    into.hist[band] += np.bincount(bins.slots(band, x), minlength=bins.bins + 2)
