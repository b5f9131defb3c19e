"""The one seam every writer implements: :class:`Sink` (two methods, like MONAI's Merger)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tilerun.geometry import Window


class Sink(ABC):
    """Receives each finished chunk once, then is finalised once.

    ``write`` is called concurrently from several threads or processes, each time for a
    different chunk-aligned window, so implementations need no locks.
    """

    @abstractmethod
    def write(self, window: Window, logits: np.ndarray, labels: np.ndarray | None) -> None:
        """Store blended ``logits`` (classes, h, w) and optional ``labels`` (h, w) at ``window``."""

    @abstractmethod
    def finalize(
        self, summary: dict[str, Any], extras: Callable[[Path], None] | None = None
    ) -> None:
        """Mark the output complete (and only then make it visible as complete).

        ``extras(path)`` may add derived data (e.g. viewer pyramids) before publication.
        """

    def completed(self) -> frozenset[tuple[int, int]]:
        """Chunk indices already written by an earlier, interrupted run (resume)."""
        return frozenset()

    def release(self) -> None:  # noqa: B027  (an optional hook: most sinks hold nothing)
        """Give up any claim on the output (the run failed or finished)."""
