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

:class:`TissueMask` relates a low-resolution mask to full-resolution windows; :func:`load_mask`
reads a mask someone else made (image file or Zarr) at whatever resolution.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tilerun.errors import InputError, TilerunWarning
from tilerun.geometry import Window

#: Saturation below which nothing is tissue, whatever Otsu says (blank slides).
MIN_SATURATION = 0.05
#: Saturation above which everything is tissue, whatever Otsu says (slides without glass).
MAX_THRESHOLD = 0.15
#: Masks larger than this (long edge, pixels) are reduced on load by a block "any".
MAX_MASK_SIZE = 4096
_STRIP_BYTES = 64 * 2**20


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


@dataclass(frozen=True, eq=False)
class TissueMask:
    """A low-resolution tissue mask and how it maps onto the full-resolution output.

    ``mask[i, j]`` covers output rows ``[i * sy, (i + 1) * sy)`` and columns
    ``[j * sx, (j + 1) * sx)``, with ``scale = (sy, sx)`` full-resolution pixels per mask pixel
    (any positive float; not necessarily an integer, not necessarily equal on both axes).
    The mask is stored as a read-only bool array.
    """

    mask: np.ndarray
    scale: tuple[float, float]

    def __post_init__(self) -> None:
        mask = np.array(self.mask, dtype=bool)  # a copy: the caller's array stays theirs
        if mask.ndim != 2 or 0 in mask.shape:
            raise ValueError(f"a tissue mask must be 2-D and non-empty, got shape {mask.shape}")
        sy, sx = (float(s) for s in self.scale)
        if not (math.isfinite(sy) and math.isfinite(sx) and sy > 0 and sx > 0):
            raise ValueError(f"scale must be two positive numbers, got {self.scale}")
        mask.flags.writeable = False
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "scale", (sy, sx))

    @classmethod
    def fit(cls, mask: np.ndarray, height: int, width: int) -> TissueMask:
        """A mask stretched over a ``height × width`` output: ``scale = (height/h, width/w)``."""
        h, w = np.shape(mask)[-2:]
        return cls(mask, (height / h, width / w))

    @property
    def fraction(self) -> float:
        """Fraction of mask pixels that are tissue."""
        return float(self.mask.mean())

    def _span(self, start: int, stop: int, axis: int) -> tuple[int, int]:
        """Mask indices ``[i0, i1)`` touching output pixels ``[start, stop)`` (floor/ceil)."""
        s = self.scale[axis]
        n = self.mask.shape[axis]
        i0 = min(max(math.floor(start / s), 0), n)
        i1 = min(max(math.ceil(stop / s), 0), n)
        return i0, i1

    def covers(self, window: Window) -> bool:
        """Whether any tissue lies under ``window`` (output pixels).

        A mask pixel only partly under the window counts (floor of the start, ceil of the
        end): when in doubt, the model runs. Parts of the window outside the mask's extent
        hold no tissue; an empty window covers nothing.
        """
        if window.is_empty:
            return False
        y0, y1 = self._span(window.y, window.bottom, 0)
        x0, x1 = self._span(window.x, window.right, 1)
        return bool(self.mask[y0:y1, x0:x1].any())

    def window_fraction(self, window: Window) -> float:
        """Fraction of the window's in-extent area that is tissue, partial mask pixels weighted.

        Each mask pixel under the window counts by the area it shares with it, so the result
        is exact for the mask as a piecewise-constant image. The part of the window outside
        the mask's extent (``[0, h*sy) × [0, w*sx)``) is left out of both numerator and
        denominator; a window with no area inside gives 0.0.
        """
        y0, y1 = self._span(window.y, window.bottom, 0)
        x0, x1 = self._span(window.x, window.right, 1)
        if window.is_empty or y1 <= y0 or x1 <= x0:
            return 0.0
        wy = _overlaps(window.y, window.bottom, y0, y1, self.scale[0])
        wx = _overlaps(window.x, window.right, x0, x1, self.scale[1])
        area = float(wy.sum() * wx.sum())
        if area <= 0:
            return 0.0
        tissue = float(wy @ self.mask[y0:y1, x0:x1].astype(np.float64) @ wx)
        return min(max(tissue / area, 0.0), 1.0)


def _overlaps(start: int, stop: int, i0: int, i1: int, s: float) -> np.ndarray:
    """Length of ``[start, stop)`` shared with each mask cell ``[i*s, (i+1)*s)``, i0 <= i < i1."""
    idx = np.arange(i0, i1, dtype=np.float64)
    return np.clip(np.minimum(stop, (idx + 1) * s) - np.maximum(start, idx * s), 0.0, None)


def load_mask(
    path: str | Path, height: int, width: int, *, max_size: int = MAX_MASK_SIZE
) -> TissueMask:
    """A tissue mask from a file, stretched over a ``height × width`` output.

    ``path`` is an image file GDAL reads (PNG, TIFF, …; band 1 only) or a Zarr array or
    group (the first 2-D bool or uint8 array, in sorted path order). Non-zero is tissue. The
    mask may have any resolution: one larger than ``max_size`` on its long edge is reduced,
    strip by strip (never loaded whole), by an integer factor ``f`` with a block *any* (a
    block with one tissue pixel is tissue), and its scale is ``f`` times the original's.

    Raises :class:`~tilerun.errors.InputError` naming the file when it cannot be read; warns
    (:class:`~tilerun.errors.TilerunWarning`) when the mask's aspect ratio does not match
    the output's, which usually means it belongs to another image.
    """
    source = Path(path)
    if height <= 0 or width <= 0:
        raise ValueError(f"output shape must be positive, got {height} × {width}")
    if not source.exists():
        raise InputError(source, "no such tissue mask")
    try:
        if _is_zarr(source):
            shape, read = _zarr_reader(source)
        else:
            shape, read = _raster_reader(source)
        if len(shape) != 2 or 0 in shape:
            raise ValueError(f"shape {shape} is not a 2-D mask")
        mh, mw = shape
        factor = max(1, math.ceil(max(mh, mw) / max_size))
        mask = _reduce_any(read, mh, mw, factor)
    except InputError:
        raise
    except Exception as err:  # any reader failure is one line naming the file
        detail = " ".join(str(err).split())[:200]
        raise InputError(
            source, f"cannot read as a tissue mask ({type(err).__name__}: {detail})"
        ) from err
    sy, sx = height / mh, width / mw
    expected_width = width * mh / height  # the mask's width if it had the output's aspect
    if abs(mw - expected_width) > max(1.5, 0.02 * mw):
        warnings.warn(
            f"{source}: tissue mask is {mh} × {mw}, output {height} × {width}: the aspect "
            "ratios differ; is it the mask of this image?",
            TilerunWarning,
            stacklevel=2,
        )
    return TissueMask(mask, (sy * factor, sx * factor))


def _is_zarr(path: Path) -> bool:
    if path.is_dir():
        return True
    return path.suffix.lower() == ".zarr"


_Reader = Callable[[int, int], np.ndarray]


def _zarr_reader(path: Path) -> tuple[tuple[int, ...], _Reader]:
    import zarr

    node: Any = zarr.open(path, mode="r")
    if isinstance(node, zarr.Group):
        found = None
        for _name, member in sorted(node.members(max_depth=None)):
            if (
                isinstance(member, zarr.Array)
                and member.ndim == 2
                and (member.dtype == np.bool_ or member.dtype == np.uint8)
            ):
                found = member
                break
        if found is None:
            raise InputError(path, "Zarr group holds no 2-D bool or uint8 array")
        node = found
    array = node

    def read(r0: int, r1: int) -> np.ndarray:
        return np.asarray(array[r0:r1]) != 0

    return tuple(int(n) for n in array.shape), read


def _raster_reader(path: Path) -> tuple[tuple[int, ...], _Reader]:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window as RioWindow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            shape = (int(ds.height), int(ds.width))

    def read(r0: int, r1: int) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                band = ds.read(1, window=RioWindow(0, r0, shape[1], r1 - r0))
        return np.asarray(band) != 0

    return shape, read


def _reduce_any(read: _Reader, height: int, width: int, factor: int) -> np.ndarray:
    """``read`` row strips and OR ``factor × factor`` blocks (ceil at the far edges)."""
    if factor == 1:
        return read(0, height)
    out_h, out_w = -(-height // factor), -(-width // factor)
    out = np.zeros((out_h, out_w), bool)
    rows = factor * max(1, _STRIP_BYTES // (factor * width))
    for r0 in range(0, height, rows):
        strip = read(r0, min(r0 + rows, height))
        pad = (-strip.shape[0] % factor, -strip.shape[1] % factor)
        strip = np.pad(strip, ((0, pad[0]), (0, pad[1])))
        blocks = strip.reshape(strip.shape[0] // factor, factor, out_w, factor)
        out[r0 // factor : r0 // factor + blocks.shape[0]] = blocks.any(axis=(1, 3))
    return out


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
