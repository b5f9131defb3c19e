"""The normalisation a model's spec asks for, one rule for the engine's :class:`Normalizer`
(pixels → model input), an export that embeds it in the graph (:mod:`tilerun.models.export`)
and the calibration tiles of INT8 quantisation, so the three never disagree.

``mean``/``std`` give ``offset = mean, scale = std``; ``scale: dtype_range`` gives
``offset = lo, scale = hi - lo`` over an integer input dtype's range; ``x' = (x - offset) /
scale`` per band.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tilerun.errors import ModelError
from tilerun.models.handle import ModelHandle
from tilerun.models.spec import ModelSpec
from tilerun.sources.base import ScaleOffset


def normalisation(spec: ModelSpec, bands: int, dtype: np.dtype[Any] | None
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """float32 ``(offset, scale)`` of the spec for ``bands`` bands of ``dtype``; None when the
    spec normalises nothing (also ``dtype_range`` over a float or unknown dtype)."""
    if spec.mean is not None and spec.std is not None:
        return np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    if spec.scale == "dtype_range" and dtype is not None and dtype.kind in "ui":
        info = np.iinfo(dtype)
        return (np.full(bands, info.min, np.float32),
                np.full(bands, float(info.max) - float(info.min), np.float32))
    return None


@dataclass(frozen=True)
class Normalizer:
    """``x' = (x - offset) / scale`` per band in float32; invalid values become 0.

    ``offset`` and ``scale`` are the spec's :func:`normalisation` (floats under
    ``dtype_range`` are taken as already in ``[0, 1]``); no normalisation gives ``0`` and
    ``1``. ``embedded``: the model's graph normalises its input itself (an export with the
    normalisation embedded), so the pixels pass as float32 and invalid ones become
    ``offset``, which the graph maps to 0.

    ``gain``/``bias``: the input's own scale/offset, applied first (``x · gain + bias`` in
    float32: the physical values, see :mod:`tilerun.models.scaling`); None: the values as
    stored.
    """

    offset: np.ndarray
    scale: np.ndarray
    embedded: bool = False
    gain: np.ndarray | None = None
    bias: np.ndarray | None = None

    @classmethod
    def for_model(cls, model: ModelHandle, bands: int, dtype: np.dtype[Any],
                  scaling: ScaleOffset | None = None) -> Normalizer:
        """``dtype``: what the model receives (float32 when ``scaling`` applies)."""
        spec = model.spec
        found = normalisation(spec, bands, dtype)
        offset, scale = found or (np.zeros(bands, np.float32), np.ones(bands, np.float32))
        if offset.shape != (bands,) or scale.shape != (bands,):
            raise ModelError(
                model.name, f"normalisation has {offset.size}/{scale.size} values for {bands} bands"
            )
        if np.any(scale <= 0):
            raise ModelError(model.name, "normalisation std must be > 0")
        if scaling is None:
            return cls(offset, scale, spec.embedded_normalisation)
        return cls(offset, scale, spec.embedded_normalisation,
                   np.asarray(scaling.scales, np.float32), np.asarray(scaling.offsets, np.float32))

    @property
    def identity(self) -> tuple[Any, ...]:
        """Every value that changes what this normaliser does (its arrays are not hashable):
        two scenes share a compute stage only when it is the same."""
        arrays = (self.offset, self.scale, self.gain, self.bias)
        return (self.embedded, *(None if a is None else a.tobytes() for a in arrays))

    def __call__(self, pixels: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Normalise a ``(bands, h, w)`` tensor on its device; ``valid`` None: all valid."""
        offset = torch.from_numpy(self.offset).to(pixels.device)[:, None, None]
        owned = False
        if self.gain is not None and self.bias is not None:
            # Two steps, as numpy does them: the same float32 values as a reflectance raster.
            pixels = pixels.to(torch.float32, copy=True)
            pixels.mul_(torch.from_numpy(self.gain).to(pixels.device)[:, None, None])
            pixels.add_(torch.from_numpy(self.bias).to(pixels.device)[:, None, None])
            owned = True
        if self.embedded:
            x = pixels if owned else pixels.to(torch.float32, copy=True)
            if valid is not None:
                x = torch.where(valid, x, offset)
            return x
        scale = torch.from_numpy(self.scale).to(pixels.device)[:, None, None]
        # Out of place first (the pixels may be the caller's array), then float32 in place.
        x = pixels.sub_(offset) if owned else (pixels - offset).to(torch.float32)
        x /= scale
        if valid is not None:
            x.masked_fill_(~valid, 0.0)
        return x

    def example(self, batch: int, tile: int) -> torch.Tensor:
        """A seeded probe batch of what the model sees: standard normal values once
        normalised (so ``offset + scale · N(0, 1)`` when the graph normalises itself)."""
        generator = torch.Generator().manual_seed(0)
        x = torch.randn((batch, self.offset.size, tile, tile), generator=generator)
        if self.embedded:
            x = x * torch.from_numpy(self.scale)[:, None, None] + \
                torch.from_numpy(self.offset)[:, None, None]
        return x
