"""Comparing two label outputs pixel by pixel: confusion matrix, agreement, IoU per class.

Streams chunk by chunk, so the stores can be any size. With ``C[i, j]`` the count of pixels
labelled ``i`` in the first store and ``j`` in the second (pixels that are nodata, 255, in
either left out): ``agreement = Σ C[i, i] / Σ C`` and
``IoU(c) = C[c, c] / (Σ_j C[c, j] + Σ_i C[i, c] − C[c, c])``, NaN for a class neither has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tilerun.errors import InputError, OutputError
from tilerun.sinks.codes import LABEL_FILL

NODATA_LABEL = LABEL_FILL


def label_confusion(a: str | Path, b: str | Path) -> np.ndarray:
    """``C[i, j]``: pixels labelled ``i`` in store ``a`` and ``j`` in store ``b``, chunk by chunk.

    Pixels that are nodata (255) in either are left out. The matrix is ``n × n`` with ``n``
    the label values of ``a``'s ``flag_values`` attribute (else the highest label seen + 1).
    """
    first, second = _labels(a), _labels(b)
    if first.shape != second.shape:
        raise OutputError(b, f"labels {second.shape} differ in shape from {first.shape}")
    bins = NODATA_LABEL
    counts = np.zeros(bins * bins, np.int64)
    rows, cols = first.chunks
    for y in range(0, first.shape[0], rows):
        for x in range(0, first.shape[1], cols):
            key = (slice(y, y + rows), slice(x, x + cols))
            counts += pair_counts(np.asarray(first[key]), np.asarray(second[key]), bins)
    matrix = counts.reshape(bins, bins)
    n = _label_count(first.attrs.get("flag_values"), matrix)
    return matrix[:n, :n]


def _labels(store: str | Path) -> Any:
    import zarr

    node = zarr.open_group(str(store), mode="r").get("labels")
    if not isinstance(node, zarr.Array):
        raise OutputError(store, "has no labels array")
    return node


def pair_counts(a: np.ndarray, b: np.ndarray, bins: int) -> np.ndarray:
    """Counts of ``a * bins + b`` over pixels valid in both (a flattened confusion matrix)."""
    keep = (a != NODATA_LABEL) & (b != NODATA_LABEL)
    pairs = a[keep].astype(np.int64) * bins + b[keep]
    return np.bincount(pairs, minlength=bins * bins)


def _label_count(flags: Any, matrix: np.ndarray) -> int:
    if isinstance(flags, list) and flags:
        return len(flags)
    seen = np.flatnonzero(matrix.sum(0) + matrix.sum(1))
    return int(seen.max()) + 1 if seen.size else 1


def agreement_and_iou(matrix: np.ndarray, subject: object) -> tuple[float, np.ndarray]:
    """``Σ C[i, i] / Σ C`` and per class ``C[c, c] / (row_c + col_c − C[c, c])`` (NaN if 0/0).

    ``subject`` names what was compared, for the error when no pixel was valid in both.
    """
    total = int(matrix.sum())
    if total == 0:
        raise InputError(subject, "has no pixels valid in both outputs to compare labels on")
    hits = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - hits
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, hits / union, np.nan)
    return float(hits.sum() / total), iou
