"""Calibration data for static INT8 quantization: tiles of a scene, normalised as the engine
normalises them, one at a time."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from tilerun.errors import OptionError
from tilerun.geometry import Window
from tilerun.models.handle import ModelHandle
from tilerun.models.normalise import Normalizer
from tilerun.models.scaling import applied_scaling, model_dtype
from tilerun.sources import Source

DEFAULT_TILE = 256


def calibration_tile(handle: ModelHandle, source: Source, tile: int | None) -> int:
    """The tile edge: ``tile``, else the spec's, else 256 shrunk to the largest multiple of the
    downsampling factor that fits the scene. A given edge must fit the scene (no padding)."""
    _, height, width = source.shape
    edge = tile if tile is not None else handle.spec.tile
    if edge is None:
        step = handle.downsampling
        edge = min(DEFAULT_TILE, min(height, width) // step * step)
        if edge < 1:
            raise OptionError("--tile", f"the {height}×{width} calibration scene {source.name} "
                                        f"is smaller than one {step} px model step")
    if edge > min(height, width):
        raise OptionError("--tile", f"{edge} px tiles do not fit the {height}×{width} "
                                    f"calibration scene {source.name}")
    if handle.spec.border == 0 and edge % handle.downsampling:
        raise OptionError("--tile", f"{edge} is not a multiple of the model's downsampling "
                                    f"factor {handle.downsampling}")
    return edge


def calibration_windows(shape: tuple[int, int, int], edge: int, count: int) -> list[Window]:
    """Up to ``count`` ``edge``-square windows inside the image, spread on a regular grid.

    Per axis ``k = min(⌈√count⌉, ⌊size / edge⌋)`` positions, evenly spaced from 0 to
    ``size − edge`` (so tiles do not overlap when they need not); when the ``ky · kx`` grid
    holds more than ``count``, ``count`` of them evenly spaced in row-major order are kept.
    """
    _, height, width = shape
    per_axis = math.ceil(math.sqrt(count))
    rows = _positions(height, edge, per_axis)
    cols = _positions(width, edge, per_axis)
    grid = [Window(int(y), int(x), edge, edge) for y in rows for x in cols]
    if len(grid) <= count:
        return grid
    keep = np.linspace(0, len(grid) - 1, count).round().astype(int)
    return [grid[i] for i in keep]


def _positions(size: int, edge: int, wanted: int) -> np.ndarray:
    k = max(1, min(wanted, size // edge))
    return np.linspace(0, size - edge, k).round().astype(int)


class CalibrationTiles:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over the calibration windows.

    Each :meth:`get_next` reads one window and normalises it exactly as the engine does
    (:class:`~tilerun.models.normalise.Normalizer`; nodata becomes 0), as a ``(1, bands, t, t)``
    float32 batch, so only one tile is in memory at a time. The caller checks the source
    against the model first (:func:`tilerun.engine.checks.check_input`).
    """

    def __init__(self, source: Source, handle: ModelHandle, windows: list[Window]) -> None:
        source.check_dtype()
        self.source = source
        self.windows = windows
        self.normalise = Normalizer.for_model(handle, source.shape[0],
                                              model_dtype(source, handle.spec),
                                              applied_scaling(source, handle.spec))
        self.input_name = str(getattr(handle.module, "input_name", "x"))
        self._next: Iterator[Window] = iter(windows)

    def get_next(self) -> dict[str, np.ndarray] | None:
        window = next(self._next, None)
        if window is None:
            return None
        pixels, valid = self.source.read(window)
        x = self.normalise(torch.from_numpy(pixels), torch.from_numpy(valid))
        return {self.input_name: x.numpy()[None]}

    def rewind(self) -> None:
        self._next = iter(self.windows)

    def __len__(self) -> int:
        return len(self.windows)
