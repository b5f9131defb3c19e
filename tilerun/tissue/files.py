"""Reading a tissue mask someone else made (image file or Zarr), at whatever resolution.

:func:`load_mask` owns the file side of tissue skipping: finding the mask array in a GDAL
raster or a Zarr array or group, reducing a mask too large to keep in memory strip by strip
(a block *any*, so no tissue is lost), turning every reader failure into one
:class:`~tilerun.errors.InputError` naming the file, and stretching the result over the output
as a :class:`~tilerun.tissue.windows.TissueMask`. Detection (:mod:`tilerun.tissue.detect`) never
reads files, and this module never looks at pixels' colours.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tilerun.errors import InputError, InputWarning
from tilerun.tissue.windows import TissueMask

#: Masks larger than this (long edge, pixels) are reduced on load by a block "any".
MAX_MASK_SIZE = 4096
_STRIP_BYTES = 64 * 2**20


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
    (:class:`~tilerun.errors.InputWarning`) when the mask's aspect ratio does not match
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
            InputWarning,
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
