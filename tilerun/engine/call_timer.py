"""How long each model call takes, for the run report's batch latency and busy share.

On a CPU the host clock around the call is the call. On a GPU the call only queues kernels,
so CUDA events recorded on the compute stream around it are timed instead, and resolved
later (:meth:`CallTimer.drain` keeps pairs whose end is not reached yet), never stalling the
stream. Durations wait here until a chunk task drains them; at most :data:`MAX_TIMINGS` are
kept, for stages whose caller never drains.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import torch

MAX_TIMINGS = 1 << 16


class CallTimer:
    """Times calls on the host clock, or with CUDA events when ``cuda``."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self._durations: list[float] = []
        self._events: list[tuple[Any, Any]] = []
        self._lock = threading.Lock()

    def start(self) -> Any:
        """A start time or event for :meth:`stop`; None when full (not timed)."""
        if len(self._durations) + len(self._events) >= MAX_TIMINGS:
            return None
        if not self.cuda:
            return time.perf_counter()
        start = torch.cuda.Event(enable_timing=True)
        start.record()
        return start

    def stop(self, start: Any) -> None:
        if start is None:
            return
        if not self.cuda:
            with self._lock:
                self._durations.append(time.perf_counter() - start)
            return
        end = torch.cuda.Event(enable_timing=True)
        end.record()
        with self._lock:
            self._events.append((start, end))

    def drain(self) -> list[float]:
        """The durations (s) since the last drain."""
        with self._lock:
            pending = []
            for start, end in self._events:
                if end.query():
                    self._durations.append(start.elapsed_time(end) / 1e3)
                else:
                    pending.append((start, end))
            self._events = pending
            drained, self._durations = self._durations, []
        return drained
