"""A model prepared once for many scenes: loaded, probed and its backend chosen per input shape,
with one compute stage per shape shared by every scene of that shape.

A single run loads the model, probes it on a batch, picks (and may convert) its backend and
starts a :class:`~tilerun.engine.feeder.DeviceFeeder`: seconds of work that a shell loop over
scenes pays for every scene. A job (:mod:`tilerun.engine.job`) makes one
:class:`PreparedModel` and hands it to :func:`~tilerun.engine.execute.run` for each scene, which
then takes the model, runner and compute stage from here instead of making its own.

The backend depends on the tiles' band count and edge (a converted graph has a fixed input),
so a runner is kept per ``(bands, tile, dtype)``; the compute stage also depends on the blend
weights, so one is kept per runner and weight window. Scenes that share a compute stage share
its batches: the tail of one scene fills a batch with the head of the next, so the device
never waits for a small scene's last tiles. Thread-safe: scenes are opened concurrently.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tilerun.engine.feeder import DeviceFeeder
from tilerun.engine.runner import TileRunner
from tilerun.models import ModelHandle
from tilerun.models.normalise import Normalizer


@dataclass(frozen=True)
class Probed:
    """A runner for one input shape and the class count its probe found."""

    runner: TileRunner
    classes: int


@dataclass(eq=False)
class PreparedModel:
    """The model of a job, loaded once; see the module docstring.

    ``executor``: the job's chunk threads, shared by every scene's Dask graph, so that the
    threads (hence the chunks in flight, hence memory) are those of one scene however many
    scenes run at once. ``client``: the job's ``distributed.Client`` (None: threads).
    """

    handle: ModelHandle
    device: torch.device
    executor: Executor | None = None
    client: Any = None
    #: seconds spent probing models and choosing backends (once per input shape)
    seconds: float = 0.0
    _runners: dict[tuple[Any, ...], Probed] = field(default_factory=dict)
    _feeders: dict[tuple[Any, ...], DeviceFeeder] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def probed(self, key: tuple[Any, ...], make: Callable[[], TileRunner],
               probe: Callable[[TileRunner], int]) -> Probed:
        """The runner for ``key`` (bands, tile, dtype): made and probed on first use only."""
        with self._lock:
            known = self._runners.get(key)
            if known is None:
                start = time.perf_counter()
                runner = make()
                known = Probed(runner, probe(runner))
                self._runners[key] = known
                self.seconds += time.perf_counter() - start
            return known

    def selected(self, runner: TileRunner, example: torch.Tensor, batch: int) -> None:
        """Choose ``runner``'s backend once (a conversion, maybe a race of candidates)."""
        with self._lock:
            if runner.selection is None:
                start = time.perf_counter()
                runner.select(example, batch)
                self.seconds += time.perf_counter() - start

    def feeder(self, runner: TileRunner, normalize: Normalizer, weights: np.ndarray,
               batch: int) -> DeviceFeeder:
        """The compute stage shared by scenes with this runner, normalisation and window."""
        digest = hashlib.sha1(np.ascontiguousarray(weights, np.float32).tobytes()).hexdigest()
        key = (id(runner), normalize.identity, weights.shape, digest, batch)
        with self._lock:
            feeder = self._feeders.get(key)
            if feeder is None:
                feeder = DeviceFeeder(runner, normalize, weights, batch)
                self._feeders[key] = feeder
            return feeder

    def close(self) -> None:
        """Stop every compute stage's threads (the job is over)."""
        with self._lock:
            feeders, self._feeders = list(self._feeders.values()), {}
        for feeder in feeders:
            feeder.close()

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends chosen so far, one per input shape."""
        return tuple(sorted({p.runner.backend_used for p in self._runners.values()}))
