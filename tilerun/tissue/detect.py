"""Tissue detection for whole-slide images, so that glass is never run through the model.

A slide is mostly empty glass: white, grey or faintly tinted, but *unsaturated*. Stained
tissue (haematoxylin purple, eosin pink) is saturated. So, on a low-resolution RGB thumbnail:

1. saturation per pixel, ``S = (max(R, G, B) - min(R, G, B)) / max(R, G, B)`` (HSV
   saturation; ``S = 0`` where ``max == 0``);
2. a threshold on ``S`` by Otsu's method (:func:`otsu_threshold`), clipped to
   ``[min_saturation, max_threshold]`` (default ``[0.05, 0.15]``): never below 0.05, so a
   blank slide, whose saturation is only noise, gives no tissue instead of half its noise;
   never above 0.15, so a thumbnail with little or no glass (a crop, a tissue-filled core),
   where Otsu splits pale from dark tissue, still keeps its pale tissue;
3. a binary opening (removes isolated noisy pixels) then a closing (fills small gaps) with a
   disk of radius ``radius``, on an edge-padded mask so tissue touching the thumbnail border
   is not eroded away;
4. removal of connected components (8-connectivity) smaller than ``min_size`` pixels (dust,
   specks).

Morphology and components use :mod:`scipy.ndimage` when SciPy is installed and an equivalent
pure-numpy implementation otherwise (identical results; tests check both), so SciPy is not a
dependency.

Known limits: very dark pixels (black scanner borders, pen marks) can be saturated and count as
tissue; the mask errs on the side of running the model, which is the cheap mistake.

This module owns the detection algorithm only: thumbnail pixels in, a boolean mask out
(steps 1–4, with the morphology and its numpy fallback, which are part of the method).
What happens to a mask afterwards is plumbing kept apart: :class:`TissueMask`, which relates a
low-resolution mask to full-resolution windows, lives in :mod:`tilerun.tissue.windows`, and
:func:`load_mask`, which reads a mask someone else made (image file or Zarr) at whatever
resolution, in :mod:`tilerun.tissue.files`. The package :mod:`tilerun.tissue` exports all
three, and the rest of tilerun imports them from there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Saturation below which nothing is tissue, whatever Otsu says (blank slides).
MIN_SATURATION = 0.05
#: Saturation above which everything is tissue, whatever Otsu says (slides without glass).
MAX_THRESHOLD = 0.15


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values``: values ``> t`` are one class, ``<= t`` the other.

    The finite values are put in a ``bins``-bin histogram over ``[min, max]`` with bin
    probabilities ``p_i``. For a split after bin ``t``, with class weight
    ``w0(t) = sum_{i<=t} p_i``, ``w1 = 1 - w0``, cumulative mean ``mu(t) = sum_{i<=t} p_i c_i``
    (``c_i`` the bin centres) and total mean ``mu_T``, the between-class variance is::

        sigma_B^2(t) = w0 * w1 * (mu0 - mu1)^2 = (mu_T * w0 - mu)^2 / (w0 * w1)

    and Otsu picks the ``t`` that maximises it (equivalently, minimises the within-class
    variance). The threshold returned is the upper edge of that bin; when several consecutive
    splits tie (the empty bins between two well-separated modes) it is the middle of the tie,
    so the threshold sits halfway across the gap rather than at the edge of one mode.

    A constant input has no split: its value is returned. Raises ``ValueError`` when there is
    no finite value.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        raise ValueError("otsu_threshold needs at least one finite value")
    low, high = float(data.min()), float(data.max())
    if low == high:
        return low
    counts, edges = np.histogram(data, bins=bins, range=(low, high))
    p = counts / counts.sum()
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)[:-1]  # split after bin t, for t = 0 … bins - 2
    mu = np.cumsum(p * centres)[:-1]
    mu_t = float((p * centres).sum())
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.where((w0 > 0) & (w1 > 0), (mu_t * w0 - mu) ** 2 / (w0 * w1), -1.0)
    best = int(np.argmax(between))
    last = best
    while last + 1 < between.size and between[last + 1] == between[best]:
        last += 1
    return float((edges[best + 1] + edges[last + 1]) / 2)


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation ``(max - min) / max`` of a ``(3, h, w)`` image, 0 where ``max == 0``."""
    bands = np.asarray(rgb)[:3].astype(np.float32)
    top = bands.max(axis=0)
    bottom = bands.min(axis=0)
    out = np.zeros(top.shape, np.float32)
    np.divide(top - bottom, top, out=out, where=top > 0)
    return out


def tissue_mask(
    rgb: np.ndarray,
    *,
    min_saturation: float = MIN_SATURATION,
    max_threshold: float = MAX_THRESHOLD,
    radius: int = 2,
    min_size: int = 64,
) -> np.ndarray:
    """Boolean ``(h, w)`` tissue mask of a low-resolution ``(bands, h, w)`` RGB thumbnail.

    ``bands`` is 3 (RGB) or 4 (RGBA: alpha 0 is never tissue). Any integer or float dtype
    works (saturation is a ratio). See the module docstring for the method; ``radius`` is the
    disk radius of the opening and closing (0 skips them) and ``min_size`` the smallest
    component kept, in thumbnail pixels (0 keeps all).
    """
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[0] not in (3, 4) or 0 in image.shape:
        raise ValueError(f"expected a (3|4, h, w) RGB(A) thumbnail, got shape {image.shape}")
    sat = saturation(image)
    threshold = min(max(otsu_threshold(sat), float(min_saturation)), float(max_threshold))
    mask = sat > threshold
    if image.shape[0] == 4:
        mask &= image[3] > 0
    if radius > 0:
        mask = _close(_open(mask, radius), radius)
    if min_size > 1:
        mask = remove_small_components(mask, min_size)
    return mask


# --- morphology: scipy.ndimage when present, numpy otherwise (same results) ----------------


def _scipy_ndimage() -> Any:
    try:
        from scipy import ndimage
    except ImportError:
        return None
    return ndimage


def disk(radius: int) -> np.ndarray:
    """Boolean disk structuring element ``y² + x² <= radius²``, ``(2r+1) × (2r+1)``."""
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    return _morph(mask, radius, erode=False)


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    return _morph(mask, radius, erode=True)


def _open(mask: np.ndarray, radius: int) -> np.ndarray:
    return _dilate(_erode(mask, radius), radius)


def _close(mask: np.ndarray, radius: int) -> np.ndarray:
    return _erode(_dilate(mask, radius), radius)


def _morph(mask: np.ndarray, radius: int, *, erode: bool) -> np.ndarray:
    """Binary erosion or dilation by :func:`disk`, the border extended by edge replication."""
    h, w = mask.shape
    padded = np.pad(mask, radius, mode="edge")
    structure = disk(radius)
    ndimage = _scipy_ndimage()
    if ndimage is not None:
        op = ndimage.binary_erosion if erode else ndimage.binary_dilation
        return np.asarray(op(padded, structure=structure))[radius : radius + h, radius : radius + w]
    out = np.full((h, w), erode, dtype=bool)
    for dy, dx in zip(*np.nonzero(structure), strict=True):
        shifted = padded[dy : dy + h, dx : dx + w]
        if erode:
            out &= shifted
        else:
            out |= shifted
    return out


def remove_small_components(mask: np.ndarray, min_size: int) -> np.ndarray:
    """``mask`` without its 8-connected components of fewer than ``min_size`` pixels."""
    mask = np.asarray(mask, dtype=bool)
    if min_size <= 1 or not mask.any():
        return mask.copy()
    ndimage = _scipy_ndimage()
    if ndimage is not None:
        labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_size
        keep[0] = False
        return np.asarray(keep[labels])
    return _remove_small_numpy(mask, min_size)


def _remove_small_numpy(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Run-length connected components (vectorised union-find over runs), 8-connectivity."""
    h, w = mask.shape
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    run_row, run_start = np.nonzero(edges == 1)
    _, run_end = np.nonzero(edges == -1)  # exclusive; row-major order matches the starts
    n = run_row.size
    key = w + 2
    start_key = run_row * key + run_start
    end_key = run_row * key + run_end
    # Runs of row r + 1 touching run a of row r (8-connected): start_b <= end_a, end_b >= start_a.
    lo = np.searchsorted(end_key, (run_row + 1) * key + run_start, side="left")
    hi = np.searchsorted(start_key, (run_row + 1) * key + run_end, side="right")
    counts = np.maximum(hi - lo, 0)
    a = np.repeat(np.arange(n), counts)
    b = np.repeat(lo, counts) + (
        np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    )
    parent = np.arange(n)
    while True:
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            break
        np.minimum.at(parent, np.maximum(ra, rb)[differ], np.minimum(ra, rb)[differ])
    sizes = np.bincount(parent, weights=(run_end - run_start), minlength=n)
    keep = sizes[parent] >= min_size
    paint = np.zeros((h, w + 1), np.int32)
    np.add.at(paint, (run_row[keep], run_start[keep]), 1)
    np.add.at(paint, (run_row[keep], run_end[keep]), -1)
    return np.cumsum(paint, axis=1)[:, :w] > 0
