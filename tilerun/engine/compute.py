"""The compute stage: the seam between chunk tasks and the model.

Chunk tasks read a chunk's padded window and hand it over as a :class:`ChunkWork`; the stage
returns the chunk's *canvas*, ``Σ_t w · z_t`` over the chunk's tiles in float32. Everything
between (device upload, normalisation, batching, the model, blending) happens inside the stage,
so only blended chunk data ever comes back to the host.

Why a stage of its own rather than a model call per chunk task: a chunk of ``Z²`` pixels holds
``ceil(Z/S)²`` tiles, rarely a multiple of the batch size, so batching per chunk leaves a partial
batch at the end of every chunk (65 of 266 forward calls at 8192²), and a device that waits for
each chunk's read is idle while it reads. One :class:`DeviceFeeder` per device and process
instead cuts **full batches across chunk boundaries** and keeps the device fed from a queue.
"""

from __future__ import annotations

import collections
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from tilerun.geometry import Window


@dataclass(frozen=True, eq=False)
class ChunkWork:
    """One chunk's input for the compute stage.

    ``pixels``: the chunk's padded read window ``(bands, h, w)`` in the stored dtype;
    ``valid``: the same shape, False where a value is nodata, or None when every value is valid;
    ``offsets``: ``(n, 2)`` top-left corner of each tile's *input* window inside ``pixels``.
    The canvas that comes back is ``(classes, h - 2B, w - 2B)`` for a valid-convolution border
    ``B``, so a tile's *output* window sits at the same offset in the canvas.
    ``read`` places ``pixels`` in the image (for messages).
    """

    index: tuple[int, int]
    read: Window
    pixels: np.ndarray
    valid: np.ndarray | None
    offsets: np.ndarray

    @property
    def tiles(self) -> int:
        return len(self.offsets)

    def canvas_window(self, border: int) -> Window:
        """Where the returned canvas lies in the image: ``read`` shrunk by ``border``."""
        return canvas_window(self.read, border)

    def tile_origins(self) -> list[tuple[int, int]]:
        """Image ``(y, x)`` of each tile's input window (for error messages)."""
        return [(self.read.y + int(y), self.read.x + int(x)) for y, x in self.offsets]


def canvas_window(read: Window, border: int) -> Window:
    """The output pixels of tiles read over ``read``: the window shrunk by ``border`` per side
    (a tile's input window is its output window grown by the valid-convolution border)."""
    b = border
    return Window(read.y + b, read.x + b, read.height - 2 * b, read.width - 2 * b)


class ComputeStage(ABC):
    """Turns :class:`ChunkWork` into blended canvases; called from many threads at once."""

    #: Tiles that went through the model in this process (probe excluded).
    tiles_run: int = 0
    #: Forward calls by batch size in this process (how often a short batch was cut).
    batch_sizes: collections.Counter[int]

    @abstractmethod
    def submit(self, work: ChunkWork) -> Future[np.ndarray]:
        """Queue a chunk; the future gives its float32 canvas ``(classes, h - 2B, w - 2B)``."""

    def close(self) -> None:  # noqa: B027  (an optional hook: most stages hold nothing)
        """Stop background work (the run is over); a later ``submit`` starts it again."""

    def drain_timings(self) -> list[float]:
        """Seconds each model call took since the last drain, in this process (for the run
        report, :mod:`tilerun.report.timing`); empty for a stage that does not time them."""
        return []
