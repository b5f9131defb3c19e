"""Labels from logits: the class of each pixel, as the run writes and reports it."""

from __future__ import annotations

import numpy as np

#: rows per block: a block's planes (classes × rows × width float32) stay in cache
ROWS = 32


def labels_from_logits(logits: np.ndarray, valid: np.ndarray, fill: int) -> np.ndarray:
    """Argmax class per pixel (``logit > 0`` for a single-class model); ``fill`` where invalid.

    Why not ``logits.argmax(axis=0)``: a reduction over the leading (class) axis of a
    ``(C, h, w)`` array walks memory with a stride of ``h·w`` floats, ~3× slower than ``C − 1``
    passes over contiguous planes, block by block of :data:`ROWS` rows: ``best = z_0``, then
    for each class ``c`` the label becomes ``c`` where ``z_c > best`` (strictly: the first
    maximum wins, as in ``argmax``) and ``best = max(best, z_c)``. NaN (nodata) compares false
    and such pixels are ``fill`` anyway.
    """
    if logits.shape[0] == 1:
        labels = np.greater(logits[0], 0).astype(np.uint8)
    else:
        labels = _argmax_classes(logits)
    labels[~valid] = fill
    return labels


def _argmax_classes(logits: np.ndarray) -> np.ndarray:
    classes, height, width = logits.shape
    labels = np.zeros((height, width), np.uint8)
    best = np.empty((min(ROWS, height), width), logits.dtype)
    higher = np.empty(best.shape, bool)
    for y in range(0, height, ROWS):
        n = min(ROWS, height - y)
        top, above, out = best[:n], higher[:n], labels[y: y + n]
        np.copyto(top, logits[0, y: y + n])
        for c in range(1, classes):
            plane = logits[c, y: y + n]
            np.greater(plane, top, out=above)
            out[above] = c
            np.maximum(top, plane, out=top)
    return labels
