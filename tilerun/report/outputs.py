"""Per-chunk statistics of the blended logits: label counts, entropy and confidence.

Each write task sees its chunk's float32 logits ``z`` ``(C, h, w)`` (NaN where nodata) and adds
up, over its valid pixels, an :class:`OutputStats`:

* ``labels[k]``: pixels labelled ``k`` (the labels written: argmax, or ``z > 0`` for one
  class), so class fractions are ``labels / Σ labels``;
* the **normalised entropy** ``H ∈ [0, 1]`` of the class probabilities, its sum (for the
  mean) and a histogram over :data:`ENTROPY_BINS` equal bins of ``[0, 1]``;
* ``low``: pixels of **low confidence**.

Labels are counted on every valid pixel; entropy and confidence on the valid pixels of the
lattice (:mod:`tilerun.report.lattice`; ``sampled`` of them), ``stride=1`` for all pixels.

``softmax`` (``p = exp(z − m) / S`` with ``m = max_c z_c`` and ``S = Σ_c exp(z_c − m)``):
``H = −Σ p ln p / ln C = (ln S − Σ_c exp(z_c − m)(z_c − m) / S) / ln C``, computed without
taking a logarithm per class; ``max_c p = 1 / S``, and a pixel is of low confidence when
``max_c p <`` :data:`LOW_CONFIDENCE` ``= 0.5`` (no class holds a majority).

``sigmoid`` (one-class models, and models whose spec says ``sigmoid``): the mean over classes of
the binary entropy ``h(p) / ln 2`` with ``p = σ(z)``, computed stably as
``h = ln(1 + e^{−|z|}) + |z| · σ(−|z|)``; a pixel is of low confidence when some class's
decision is unsure, ``0.25 < p_c < 0.75`` (``σ(−|z|) >`` :data:`LOW_CONFIDENCE_SIGMOID`).

Passes are vectorised over blocks of rows (:data:`BLOCK_BYTES` of float32 scratch each), so
they run in cache; ``logits`` is never modified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tilerun.classes.labels import labels_from_logits
from tilerun.classes.names import label_values
from tilerun.classes.probabilities import check_activation
from tilerun.report.lattice import STRIDE, lattice
from tilerun.sinks.layout.codes import LABEL_FILL

ENTROPY_BINS = 20
#: softmax: ``max_c p_c`` below this is of low confidence
LOW_CONFIDENCE = 0.5
#: sigmoid: a class probability within ``(0.25, 0.75)`` is of low confidence
LOW_CONFIDENCE_SIGMOID = 0.25
#: bytes of float32 scratch per block of rows
BLOCK_BYTES = 1 << 18


@dataclass(frozen=True)
class OutputStats:
    """Sums over valid output pixels; add two with ``+`` (see the module docstring)."""

    labels: np.ndarray
    entropy_sum: float
    entropy_hist: np.ndarray
    low: int
    #: valid pixels entropy and confidence were computed on (the lattice's)
    sampled: int = 0

    @property
    def pixels(self) -> int:
        return int(self.labels.sum())

    @classmethod
    def empty(cls, labels: int) -> OutputStats:
        return cls(np.zeros(labels, np.int64), 0.0, np.zeros(ENTROPY_BINS, np.int64), 0, 0)

    def __add__(self, other: OutputStats) -> OutputStats:
        return OutputStats(self.labels + other.labels, self.entropy_sum + other.entropy_sum,
                           self.entropy_hist + other.entropy_hist, self.low + other.low,
                           self.sampled + other.sampled)


def observe_output(logits: np.ndarray, valid: np.ndarray, labels: np.ndarray | None,
                   activation: str, origin: tuple[int, int] = (0, 0),
                   stride: int = STRIDE) -> OutputStats:
    """The statistics of one chunk: ``logits`` ``(C, h, w)`` float32, ``valid`` ``(h, w)``,
    ``labels`` ``(h, w)`` uint8 with 255 where invalid (None: derived here), ``activation``
    ``softmax`` or ``sigmoid``; entropy on the lattice of ``stride`` (``origin``: the image
    pixel of ``logits[:, 0, 0]``)."""
    check_activation(activation)
    classes, height, width = logits.shape
    n_labels = label_values(classes)
    if labels is None:
        labels = labels_from_logits(logits, valid, LABEL_FILL)
    counts = _label_counts(labels, n_labels)
    ys, xs = lattice(*origin, stride)
    logits, valid = logits[:, ys, xs], valid[ys, xs]
    height, width = valid.shape
    total, low = 0.0, 0
    hist = np.zeros(ENTROPY_BINS, np.int64)
    rows = max(1, BLOCK_BYTES // (4 * classes * max(width, 1)))
    entropy = softmax_entropy if activation == "softmax" and classes > 1 else sigmoid_entropy
    everywhere = bool(valid.all())
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for y in range(0, height, rows):
            h, unsure = entropy(logits[:, y: y + rows])
            if not everywhere:
                keep = valid[y: y + rows]
                h, unsure = h[keep], unsure[keep]
            total += float(h.sum(dtype=np.float64))
            low += int(np.count_nonzero(unsure))
            np.multiply(h, ENTROPY_BINS, out=h)
            hist += np.bincount(np.minimum(h.astype(np.intp).ravel(), ENTROPY_BINS - 1),
                                minlength=ENTROPY_BINS)
    return OutputStats(counts.astype(np.int64), total, hist, low, int(np.count_nonzero(valid)))


def _label_counts(labels: np.ndarray, values: int) -> np.ndarray:
    """Pixels per label value: one comparison pass per value for a few classes (``bincount``
    widens every uint8 to an 8-byte index first, ~5 ms per 1024² chunk)."""
    if values > 32:
        return np.bincount(labels.ravel(), minlength=LABEL_FILL + 1)[:values]
    return np.array([np.count_nonzero(labels == k) for k in range(values)], np.int64)


def softmax_entropy(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised softmax entropy and ``max p < 0.5`` of a block ``(C, r, w)``."""
    shifted = z - z.max(axis=0)
    e = np.exp(shifted)
    s = e.sum(axis=0)
    e *= shifted
    t = e.sum(axis=0)
    t /= s
    h = np.log(s)
    h -= t
    h *= 1.0 / math.log(z.shape[0])
    np.clip(h, 0.0, 1.0, out=h)  # rounding can step just outside
    return h, s > 1.0 / LOW_CONFIDENCE


def sigmoid_entropy(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean normalised binary entropy over classes and ``any 0.25 < p_c < 0.75``."""
    a = np.abs(z)
    q = np.exp(-a)  # e^{−|z|}; σ(−|z|) = q / (1 + q)
    h = np.log1p(q)
    q /= 1.0 + q
    unsure = (q > LOW_CONFIDENCE_SIGMOID).any(axis=0)
    q *= a
    h += q
    mean = h.mean(axis=0) if z.shape[0] > 1 else h[0]
    mean *= 1.0 / math.log(2.0)
    np.clip(mean, 0.0, 1.0, out=mean)
    return mean, unsure
