"""A low-resolution map of prediction entropy, computed from a stored output.

The map samples every ``step``-th row and column (``step`` = ``ceil(longest edge / max_size)``,
as quicklooks do) and is read **one stored chunk at a time**: a chunk's strided pixels are
decoded, turned into entropy and dropped, so memory holds the small map and one chunk, never
the raster. The entropy is the normalised one of :mod:`tilerun.report.outputs`
(``H / ln C`` for softmax, the mean binary entropy ``/ ln 2`` for sigmoid), from the float
``logits`` when stored, else from the uint8 ``probabilities`` (``p = code / 254``,
``H = −Σ p ln p`` with ``0 ln 0 = 0``; for softmax the codes are renormalised to sum to 1).
Nodata is NaN. Outputs with labels only have no map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilerun.report.outputs import sigmoid_entropy, softmax_entropy
from tilerun.report.quicklook import decimation_step
from tilerun.sinks.layout.codes import PROBABILITY_FILL, PROBABILITY_SCALE


@dataclass(frozen=True)
class EntropyMap:
    """``values`` ``(h, w)`` in ``[0, 1]`` (NaN: nodata), every ``step``-th pixel of
    ``variable``."""

    values: np.ndarray
    step: int
    variable: str


def entropy_map(group: Any, activation: str, max_size: int = 512) -> EntropyMap | None:
    """The map of an open output group (None when it stores neither logits nor
    probabilities); ``activation``: ``softmax`` or ``sigmoid``."""
    names = set(group.array_keys())
    variable = next((v for v in ("logits", "probabilities") if v in names), None)
    if variable is None:
        return None
    array = group[variable]
    classes, height, width = array.shape
    if classes == 1:
        activation = "sigmoid"
    step = decimation_step(height, width, max_size)
    out = np.full((-(-height // step), -(-width // step)), np.nan, np.float32)
    _, rows, cols = array.chunks
    for y0 in range(0, height, rows):
        ya = -(-y0 // step) * step  # first sampled row in this chunk row
        for x0 in range(0, width, cols):
            xa = -(-x0 // step) * step
            block = np.asarray(array[:, ya: y0 + rows: step, xa: x0 + cols: step])
            if block.size == 0:
                continue
            h = _entropy(block, variable, activation)
            out[ya // step: ya // step + h.shape[0], xa // step: xa // step + h.shape[1]] = h
    return EntropyMap(out, step, variable)


def _entropy(block: np.ndarray, variable: str, activation: str) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if variable == "logits":
            z = block.astype(np.float32)
            h = (softmax_entropy(z) if activation == "softmax" else sigmoid_entropy(z))[0]
            h[np.isnan(z).any(axis=0)] = np.nan
            return h
        nodata = (block == PROBABILITY_FILL).any(axis=0)
        p = block.astype(np.float32) / PROBABILITY_SCALE
        if activation == "softmax":
            p /= p.sum(axis=0)
            terms = np.where(p > 0, -p * np.log(p), 0.0)
            h = terms.sum(axis=0) / math.log(block.shape[0])
        else:
            q = 1.0 - p
            terms = np.where(p > 0, -p * np.log(p), 0.0) + np.where(q > 0, -q * np.log(q), 0.0)
            h = terms.mean(axis=0) / math.log(2.0)
        h = np.clip(h, 0.0, 1.0).astype(np.float32)
        h[nodata] = np.nan
        return h
