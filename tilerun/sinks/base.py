"""The one seam every writer implements: :class:`Sink`, which owns its output's whole life.

The engine calls, in order: :meth:`Sink.check` before any work (so bad destinations fail
before a model is loaded), :meth:`Sink.open` once the output's shape is known (create, or
resume an unfinished output), :meth:`Sink.completed`, then :meth:`Sink.write` once per chunk
(concurrently), and finally :meth:`Sink.finalize` or, when the run fails, :meth:`Sink.abort`.
The engine never names a concrete sink: ``tilerun.run(..., sink=...)`` takes any.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from tilerun.geometry import Window
from tilerun.sinks.pyramids.request import PyramidRequest


class Sink(ABC):
    """Receives each finished chunk once, then is finalised once.

    ``write`` is called concurrently from several threads or processes, each time for a
    different chunk-aligned window, so implementations need no locks.
    """

    #: where the output goes, for messages
    name: str = "output"
    #: whether :meth:`finalize` can add viewer pyramids (``pyramids``) to the output
    takes_pyramids: bool = True

    def check(self) -> None:  # noqa: B027  (optional: a sink with nothing to check)
        """Refuse a destination that cannot take the output, before any work."""

    @abstractmethod
    def open(self, layout: Any, georef: Any, attrs: dict[str, Any], resume: bool) -> None:
        """Create the output for ``layout`` (an :class:`~tilerun.sinks.layout.OutputLayout`),
        with ``georef`` and the run's ``attrs`` (its ``fingerprint`` identifies the job), or,
        with ``resume``, reopen the same job's unfinished output."""

    @abstractmethod
    def write(self, window: Window, outputs: Mapping[str, np.ndarray]) -> None:
        """Store one chunk's ``outputs`` at ``window``: variable name → that chunk's data.

        It holds exactly the variables the sink was set up to store, each computed from the
        blended float32 logits in the write task:

        * ``logits``: float32 ``(classes, h, w)``, NaN where nodata (the sink may store it
          in a narrower type);
        * ``labels``: uint8 ``(h, w)``, the argmax class (``logit > 0`` for one class),
          :data:`~tilerun.sinks.layout.LABEL_FILL` where nodata;
        * ``probabilities``: uint8 ``(classes, h, w)`` codes ``round(p * PROBABILITY_SCALE)``
          of the class probabilities ``p`` (softmax or sigmoid, see
          :mod:`tilerun.sinks.layout.variables`),
          :data:`~tilerun.sinks.layout.PROBABILITY_FILL` where nodata.
        """

    @abstractmethod
    def finalize(self, summary: dict[str, Any], pyramids: PyramidRequest | None = None) -> None:
        """Mark the output complete (and only then make it visible as complete).

        ``pyramids``, when given, names the viewer pyramids to add to the output before it is
        published; the sink writes them into its own store (the Zarr sinks with
        :func:`~tilerun.sinks.pyramids.ngff.write_pyramids`). A sink that takes none says so
        with :attr:`takes_pyramids`, and is then never asked.
        """

    def keep_carry(  # noqa: B027  (optional: a sink that keeps nothing makes resume recompute)
        self, source: tuple[int, int], target: tuple[int, int], data: np.ndarray
    ) -> None:
        """Keep the float32 partial sums chunk ``source`` sends to the unfinished ``target``.

        Called before ``source`` is written; with them a resumed run need not run the tiles
        of finished chunks again. ``data`` is opaque to the sink.
        """

    def carry(self, source: tuple[int, int], target: tuple[int, int]) -> np.ndarray | None:
        """What :meth:`keep_carry` kept for this pair, or None."""
        return None

    def unfinished(self) -> str:
        """Where an interrupted run's chunks are kept, for ``--resume`` (for messages)."""
        return self.name

    def completed(self) -> frozenset[tuple[int, int]]:
        """Chunk indices already written by an earlier, interrupted run (resume)."""
        return frozenset()

    def abort(self) -> None:  # noqa: B027  (an optional hook: most sinks hold nothing)
        """The run failed: give up any claim on the output, keeping what a resume needs."""
