"""The backend seam: what runs a batch of normalised tiles through the model.

A :class:`Backend` turns a model (a :class:`~tilerun.models.ModelHandle`) into a
:class:`Compiled` callable for one :class:`Target` (device, precision, tile and batch shape).
Backends differ in how they run the same graph — eager PyTorch, ``torch.compile``, ONNX
Runtime, OpenVINO — never in what they compute: :mod:`tilerun.backends.select` checks every
converted model against eager PyTorch before it is used.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from tilerun.errors import BackendWarning as BackendWarning  # with the other warnings
from tilerun.models import ModelHandle

PRECISIONS = ("fp32", "bf16", "fp16")


class ConversionError(Exception):
    """A backend could not convert or load the model; the selector falls back to torch."""


@dataclass(frozen=True)
class Target:
    """What a converted model must run: ``(batch, bands, tile, tile)`` float32 tiles on
    ``device`` at ``precision``, with ``threads`` intra-op threads on a CPU."""

    device: torch.device
    precision: str
    bands: int
    tile: int
    batch: int
    threads: int


@dataclass(frozen=True)
class Compiled:
    """A model ready to run: ``run(x)`` maps a float32 ``(n, bands, tile, tile)`` batch on the
    target's device to logits (any float type) on that device.

    ``fixed_batch``: the backend was built for exactly ``Target.batch`` tiles (a static
    OpenVINO shape, a CUDA graph autotuned once), so the runner pads short batches.
    """

    backend: str
    run: Callable[[torch.Tensor], torch.Tensor]
    fixed_batch: bool = False


def padded(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``x`` with zero tiles appended up to ``batch`` tiles, for a :class:`Compiled` built for
    a fixed batch (``x`` as is when it is full, or when the backend takes any batch)."""
    short = batch - int(x.shape[0])
    return torch.cat([x, x.new_zeros((short, *x.shape[1:]))]) if short > 0 else x


class Backend(ABC):
    """One way of running models: knows whether it can run here and how to convert."""

    name: ClassVar[str]
    #: the precisions it can run (autocast types for torch, inference hints for OpenVINO)
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS

    def unavailable(self, model: ModelHandle, target: Target) -> str | None:
        """Why this backend cannot run ``model`` for ``target`` (``None``: it can).

        Checked before any conversion, so the reason is cheap to find: a missing package,
        an unsupported device or precision, a model kind it cannot take.
        """
        if target.precision not in self.precisions:
            return f"it does not run {target.precision}"
        return None

    @abstractmethod
    def load(self, model: ModelHandle, target: Target) -> Compiled:
        """Convert (or fetch from the cache) and load; raise :class:`ConversionError`."""
