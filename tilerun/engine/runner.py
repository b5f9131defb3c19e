"""Running batches of tiles through a model: normalisation, the backend, TTA, float32 logits.

One :class:`TileRunner` per process holds the model on its device. Only the compute stage's model
thread calls it during a run (see :mod:`tilerun.engine.compute`), so the model gets all intra-op
threads (CPU) or the whole GPU while other threads read, blend and write.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import replace
from typing import Any

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
