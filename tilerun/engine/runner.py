"""Running batches of tiles through a model: normalisation, the backend, TTA, float32 logits.

One :class:`TileRunner` per process holds the model on its device. Only the compute stage's model
thread calls it during a run (see :mod:`tilerun.engine.compute`), so the model gets all intra-op
threads (CPU) or the whole GPU while other threads read, blend and write.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from tilerun.backends import (
    BACKENDS,
    BackendWarning,
    Compiled,
    ConversionError,
    Selection,
    Target,
    as_loaded,
    select_backend,
)
from tilerun.backends.base import padded
from tilerun.backends.torch_backends import on_device
from tilerun.engine.tta import averaged
from tilerun.errors import ModelError, OptionError, first_line
from tilerun.models import ModelHandle
from tilerun.sources import ScaleOffset


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
    in ``[0, 1]``); no normalisation gives ``0`` and ``1``. ``embedded``: the model's graph
    normalises its input itself (an export with the normalisation embedded), so the pixels
    pass as float32 and invalid ones become ``offset``, which the graph maps to 0.

    ``gain``/``bias``: the input's own scale/offset, applied first (``x · gain + bias`` in
    float32: the physical values, see :mod:`tilerun.engine.scaling`); None: the values as
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


class TileRunner:
    """The model on its device: the chosen backend, test-time augmentation, float32 logits.

    ``module`` is the model as loaded (eager, NCHW): the probe and the reference every
    backend is checked against. :meth:`select` picks the backend (see
    :mod:`tilerun.backends.select`); until then batches run on ``module`` itself.
    """

    def __init__(
        self,
        model: ModelHandle,
        device: torch.device,
        precision: str = "fp32",
        tta: str = "none",
        device_option: str = "auto",
        backend: str = "auto",
    ) -> None:
        self.model = model
        self.device = device
        self.device_option = device_option
        self.precision = precision
        self.tta = tta
        self.backend = backend
        self.module = on_device(model.module, device)
        self.target: Target | None = None
        self.selection: Selection | None = None
        self._probed: tuple[torch.Tensor, torch.Tensor] | None = None
        self._compiled = self._as_loaded()
        self._lock = threading.Lock()

    @property
    def backend_used(self) -> str:
        return self._compiled.backend

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, classes, h, w)`` in float32 on the device, whatever the precision.

        ``tiles`` is a normalised float32 batch already on :attr:`device`. Called by one thread
        at a time (the compute stage's model thread). Once a backend is chosen, short batches
        are padded with zero tiles to the run's batch size, whatever the backend: a backend
        built for a fixed batch needs it, and eager torch on a CPU computes a tile in a batch
        of one with other kernels than in a full batch (3e-8 apart), so a short batch, which the
        feeder cuts only when the model would wait (a matter of timing), made reruns and
        remote-vs-local runs differ in the last bit. Padded, every tile sees the same kernels.
        """
        n = int(tiles.shape[0])
        x = tiles
        if self.target is not None:
            x = padded(tiles, self.target.batch)
        with self._lock, torch.inference_mode():
            y = averaged(self._compiled.run, x, self.tta)[:n]
        b = self.model.spec.border
        expected = (tiles.shape[2] - 2 * b, tiles.shape[3] - 2 * b)
        if y.ndim != 4 or y.shape[0] != n or tuple(y.shape[2:]) != expected:
            raise ModelError(
                self.model.name,
                f"maps tiles {tuple(tiles.shape)} to {tuple(y.shape)}; expected (N, classes, "
                f"{expected[0]}, {expected[1]}) for a border of {b} px",
            )
        return y.to(self.device)

    def probe(self, bands: int, tile: int, example: torch.Tensor | None = None) -> int:
        """Run ``example`` (default: one zero tile) to learn the class count and check that
        the model accepts ``bands`` and gives logits of the tile's size. Its output is kept as
        the reference :meth:`select` checks backends against, so the slow eager model runs
        once before the work."""
        x = example if example is not None else torch.zeros((1, bands, tile, tile))
        try:
            with torch.inference_mode():
                out = self.module(x.to(self.device))
        except (RuntimeError, AssertionError) as err:  # torch.export guards raise AssertionError
            raise ModelError(
                self.model.name, f"cannot run on {bands}-band tiles: {first_line(err)}"
            ) from err
        b = self.model.spec.border
        if out.ndim != 4 or tuple(out.shape[2:]) != (tile - 2 * b, tile - 2 * b):
            raise ModelError(self.model.name, f"maps {tile}² tiles to shape {tuple(out.shape)}, "
                             f"not (N, classes, {tile - 2 * b}, {tile - 2 * b}) for a border "
                             f"of {b} px")
        self._probed = (x, out.float())
        return int(out.shape[1])

    def select(self, example: torch.Tensor, batch: int) -> Selection:
        """Choose the backend for batches of ``batch`` tiles, checked against the eager fp32
        module on ``example`` (``(n, bands, tile, tile)``, normalised as the model expects;
        a few tiles suffice to catch a wrong conversion, and the eager reference is slow)."""
        _, bands, tile, _ = example.shape
        self.target = Target(self.device, self.precision, int(bands), int(tile), batch,
                             torch.get_num_threads())
        probed, self._probed = self._probed, None
        if probed is not None and probed[0] is example:
            reference = probed[1]
        else:
            with torch.inference_mode():
                reference = self.module(example.to(self.device)).float()
        example = example.to(self.device)
        self.selection = select_backend(
            self.model, self.module, self.target, self.backend, example, reference
        )
        self._compiled = self.selection.compiled
        return self.selection

    def _as_loaded(self) -> Compiled:
        target = Target(self.device, self.precision, 0, 0, 1, torch.get_num_threads())
        return as_loaded(self.model, self.module, target)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_probed"] = None
        for name in ("_lock", "_compiled", "selection"):
            del state[name]  # sessions, compiled graphs and closures do not pickle
        state["chosen"] = self.backend_used
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """On a worker: this process's own device (``auto``), thread count and backend."""
        chosen = state.pop("chosen")
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self.selection = None
        self.device = resolve_device(self.device_option)
        self.module = on_device(self.module, self.device)
        threads = _worker_threads()
        if threads is not None and self.device.type == "cpu":
            torch.set_num_threads(threads)
        self._compiled = self._as_loaded()
        if self.target is not None:
            self.target = replace(self.target, device=self.device,
                                  threads=torch.get_num_threads())
            self._compiled = self._reloaded(chosen, self.target)

    def _reloaded(self, chosen: str, target: Target) -> Compiled:
        """The backend chosen (and checked) by the client, loaded here from the cache."""
        backend = BACKENDS.get(chosen)
        if backend is None or backend.unavailable(self.model, target) is not None:
            return self._compiled
        try:
            return backend.load(self.model, target)
        except (ConversionError, OSError) as err:
            warnings.warn(f"{self.model.name}: backend {chosen} not used on this worker, {err}",
                          BackendWarning, stacklevel=2)
            return self._compiled


def _worker_threads() -> int | None:
    """The thread count of the dask worker this runs in, if any (one torch thread per thread)."""
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None
