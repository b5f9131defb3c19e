"""Comparing two outputs of the same scene (a shadow deployment: a new model, backend or
precision next to the current one), streamed chunk by chunk.

Per block of the first output's chunk grid, both outputs' labels are read (the ``labels``
variable, else the argmax of ``logits``, else of ``probabilities``; 255 for nodata) and added
to the confusion matrix ``C`` (``C[i, j]``: pixels labelled ``i`` in the first and ``j`` in the
second), which gives the label ``agreement`` ``Σ C[i, i] / Σ C`` and
``IoU(c) = C[c, c] / (row_c + col_c − C[c, c])`` over pixels valid in both (NaN for a class
neither has; ``mean_iou``: their mean over classes present in either). When both store logits,
``max_logit_difference = max |z_a − z_b|`` over classes and pixels valid in both.
``nodata_mismatch`` counts pixels that are nodata in exactly one.

Outputs of different size, class count or georeferenced grid are refused (one line each).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tilerun.classes.names import label_names, label_values
from tilerun.errors import InputError
from tilerun.report.record import finite
from tilerun.report.stored import open_output
from tilerun.sinks.layout.codes import LABEL_FILL
from tilerun.sinks.layout.store import class_names, read_labels, run_record


@dataclass(frozen=True)
class OutputComparison:
    """What :func:`compare_outputs` found (formulas in the module docstring)."""

    a: str
    b: str
    pixels: int
    agreement: float
    class_names: tuple[str, ...]
    iou: tuple[float | None, ...]
    mean_iou: float | None
    max_logit_difference: float | None
    nodata_mismatch: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["class_names"], data["iou"] = list(self.class_names), list(self.iou)
        return data


@dataclass(frozen=True)
class _Output:
    path: str | Path
    group: Any
    shape: tuple[int, int]
    classes: int | None
    blocks: tuple[int, int]

    def array(self, name: str) -> Any:
        return self.group[name] if name in set(self.group.array_keys()) else None

    def labels(self, ys: slice, xs: slice) -> np.ndarray:
        """Labels of a block, 255 where nodata (see
        :func:`tilerun.sinks.layout.store.read_labels`)."""
        return read_labels(self.group, ys, xs)


def compare_outputs(a: str | Path, b: str | Path, subject: object = None) -> OutputComparison:
    """Compare two finished outputs (see the module docstring); ``subject`` names them in the
    error when no pixel is valid in both (default ``A vs B``)."""
    first, second = _open(a), _open(b)
    _check_same_grid(first, second)
    classes = first.classes or second.classes
    both_logits = first.array("logits") is not None and second.array("logits") is not None
    bins = LABEL_FILL
    counts = np.zeros(bins * bins, np.int64)
    worst, mismatch = -np.inf, 0
    rows, cols = first.blocks
    height, width = first.shape
    for y in range(0, height, rows):
        for x in range(0, width, cols):
            ys, xs = slice(y, y + rows), slice(x, x + cols)
            la, lb = first.labels(ys, xs), second.labels(ys, xs)
            counts += pair_counts(la, lb, bins)
            mismatch += int(np.count_nonzero((la == LABEL_FILL) != (lb == LABEL_FILL)))
            if both_logits:
                worst = max(worst, _max_difference(first, second, ys, xs))
    matrix = counts.reshape(bins, bins)
    seen = np.flatnonzero(matrix.sum(0) + matrix.sum(1))
    n = label_values(classes) if classes else (int(seen.max()) + 1 if seen.size else 1)
    matrix = matrix[:n, :n]
    agreement, iou = agreement_and_iou(matrix, subject or f"{a} vs {b}")
    defined = iou[~np.isnan(iou)]
    return OutputComparison(
        a=str(a), b=str(b), pixels=int(matrix.sum()), agreement=agreement,
        class_names=_class_names(first, n), iou=tuple(finite(v) for v in iou),
        mean_iou=float(defined.mean()) if defined.size else None,
        max_logit_difference=finite(worst) if both_logits else None,
        nodata_mismatch=mismatch,
    )


def _max_difference(first: _Output, second: _Output, ys: slice, xs: slice) -> float:
    za = np.asarray(first.array("logits")[:, ys, xs], np.float32)
    zb = np.asarray(second.array("logits")[:, ys, xs], np.float32)
    both = ~(np.isnan(za).any(axis=0) | np.isnan(zb).any(axis=0))
    if not both.any():
        return -np.inf
    return float(np.abs(za - zb)[:, both].max())


def _open(path: str | Path) -> _Output:
    group = open_output(path)
    names = set(group.array_keys())
    if "labels" in names:
        labels = group["labels"]
        shape, blocks = tuple(labels.shape), tuple(labels.chunks)
    elif "logits" in names or "probabilities" in names:
        array = group["logits" if "logits" in names else "probabilities"]
        shape, blocks = tuple(array.shape[1:]), tuple(array.chunks[1:])
    else:
        raise InputError(path, "has neither labels, logits nor probabilities; is it a "
                         "tilerun output?")
    if len(shape) != 2:
        raise InputError(path, f"its outputs have {len(shape)} spatial dimensions, expected 2")
    classes = next((int(group[v].shape[0]) for v in ("logits", "probabilities") if v in names),
                   None)
    return _Output(path, group, (int(shape[0]), int(shape[1])), classes,
                   (int(blocks[0]), int(blocks[1])))


def _check_same_grid(first: _Output, second: _Output) -> None:
    if first.shape != second.shape:
        raise InputError(second.path, f"is {second.shape[0]}×{second.shape[1]} pixels but "
                         f"{first.path} is {first.shape[0]}×{first.shape[1]}: outputs of "
                         "different shape cannot be compared")
    if first.classes and second.classes and first.classes != second.classes:
        raise InputError(second.path, f"has {second.classes} classes but {first.path} has "
                         f"{first.classes}")
    ga, gb = _georef(first), _georef(second)
    if ga is not None and gb is not None and ga != gb:
        raise InputError(second.path, f"is on another grid than {first.path} (its "
                         "georeferencing, GeoTransform or CRS, differs)")


def _georef(output: _Output) -> tuple[Any, Any] | None:
    if "spatial_ref" not in set(output.group.array_keys()):
        return None
    attrs = output.group["spatial_ref"].attrs
    transform = attrs.get("GeoTransform")
    if isinstance(transform, str):
        transform = tuple(round(float(v), 9) for v in transform.split())
    return transform, attrs.get("crs_wkt")


def _class_names(output: _Output, n: int) -> tuple[str, ...]:
    """The names of label values ``0 … n-1`` (see
    :func:`tilerun.sinks.layout.store.class_names`)."""
    return label_names(class_names(output.group, run_record(output.group)), n)


def pair_counts(a: np.ndarray, b: np.ndarray, bins: int) -> np.ndarray:
    """Counts of ``a * bins + b`` over pixels valid in both (a flattened confusion matrix)."""
    keep = (a != LABEL_FILL) & (b != LABEL_FILL)
    pairs = a[keep].astype(np.int64) * bins + b[keep]
    return np.bincount(pairs, minlength=bins * bins)


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
