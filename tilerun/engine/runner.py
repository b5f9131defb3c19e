"""Running batches of tiles through a model: normalisation, autocast, TTA, float32 logits.

One :class:`TileRunner` per process holds the model on its device. Only the compute stage's model
thread calls it during a run (see :mod:`tilerun.engine.compute`), so the model gets all intra-op
threads (CPU) or the whole GPU while other threads read, blend and write.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tilerun.engine.tta import averaged
from tilerun.errors import ModelError, OptionError
from tilerun.models import ModelHandle

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError("--device", f"{device} requested but CUDA is not available")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise OptionError("--device", f"unknown device {device!r}") from err


@dataclass(frozen=True)
class Normalizer:
    """``x' = (x - offset) / scale`` per band in float32; invalid values become 0.

    From the spec: ``mean``/``std`` give ``offset = mean, scale = std``; ``dtype_range`` gives
    ``offset = lo, scale = hi - lo`` over the input dtype's range (floats are taken as already
    in ``[0, 1]``); no normalisation gives ``0`` and ``1``.
    """

    offset: np.ndarray
    scale: np.ndarray

    @classmethod
    def for_model(cls, model: ModelHandle, bands: int, dtype: np.dtype[Any]) -> Normalizer:
        spec = model.spec
        offset, scale = np.zeros(bands, np.float32), np.ones(bands, np.float32)
        if spec.mean is not None and spec.std is not None:
            offset, scale = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
        elif spec.scale == "dtype_range" and dtype.kind in "ui":
            info = np.iinfo(dtype)
            offset[:], scale[:] = info.min, float(info.max) - float(info.min)
        if offset.shape != (bands,) or scale.shape != (bands,):
            raise ModelError(
                model.name, f"normalisation has {offset.size}/{scale.size} values for {bands} bands"
            )
        if np.any(scale <= 0):
            raise ModelError(model.name, "normalisation std must be > 0")
        return cls(offset, scale)

    def __call__(self, pixels: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Normalise a ``(bands, h, w)`` tensor on its device; ``valid`` None: all valid."""
        offset = torch.from_numpy(self.offset).to(pixels.device)[:, None, None]
        scale = torch.from_numpy(self.scale).to(pixels.device)[:, None, None]
        # Out of place first (the pixels may be the caller's array), then float32 in place.
        x = (pixels - offset).to(torch.float32)
        x /= scale
        if valid is not None:
            x.masked_fill_(~valid, 0.0)
        return x


class TileRunner:
    """The model on its device: autocast, test-time augmentation, float32 logits, shape checks."""

    def __init__(
        self,
        model: ModelHandle,
        device: torch.device,
        precision: str = "fp32",
        tta: str = "none",
        device_option: str = "auto",
    ) -> None:
        self.model = model
        self.device = device
        self.device_option = device_option
        self.autocast = AUTOCAST[precision]
        self.tta = tta
        self.module = _on_device(model.module, device)
        self._lock = threading.Lock()

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, classes, h, w)`` in float32 on the device, whatever the autocast type.

        ``tiles`` is a normalised float32 batch already on :attr:`device`. Called by one thread
        at a time (the compute stage's model thread, or :meth:`probe` before it starts).
        """
        with self._lock, torch.inference_mode(), self._autocast():
            y = averaged(self.module, tiles, self.tta)
        b = self.model.spec.border
        expected = (tiles.shape[2] - 2 * b, tiles.shape[3] - 2 * b)
        if y.ndim != 4 or y.shape[0] != tiles.shape[0] or tuple(y.shape[2:]) != expected:
            raise ModelError(
                self.model.name,
                f"maps tiles {tuple(tiles.shape)} to {tuple(y.shape)}; expected (N, classes, "
                f"{expected[0]}, {expected[1]}) for a border of {b} px",
            )
        return y

    def _autocast(self) -> Any:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def probe(self, bands: int, tile: int) -> int:
        """Run one tile to learn the class count and check the model accepts ``bands``."""
        try:
            out = self.forward(torch.zeros((1, bands, tile, tile), device=self.device))
        except (RuntimeError, AssertionError) as err:  # torch.export guards raise AssertionError
            first_line = (str(err) or type(err).__name__).splitlines()[0]
            raise ModelError(
                self.model.name, f"cannot run on {bands}-band tiles: {first_line}"
            ) from err
        return int(out.shape[1])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """On a worker: pick this process's own device (``auto``) and thread count."""
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self.device = resolve_device(self.device_option)
        self.module = _on_device(self.module, self.device)
        threads = _worker_threads()
        if threads is not None and self.device.type == "cpu":
            torch.set_num_threads(threads)


def _worker_threads() -> int | None:
    """The thread count of the dask worker this runs in, if any (one torch thread per thread)."""
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None


def _on_device(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to ``device`` in eval mode; exported programs support neither call, and need none."""
    try:
        return module.to(device).eval()
    except NotImplementedError:
        return module


