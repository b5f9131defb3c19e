"""The pixels the run report measures: a lattice, every :data:`STRIDE`-th row and column.

Image statistics for monitoring — input means, spreads and histograms for drift, output
entropy and confidence — need no more than a regular sample: neighbouring pixels are strongly
correlated (blended logits smoothly so), and one pixel in 16 of a gigapixel scene is still
tens of millions. Measured on every pixel, the statistics cost 84 ms of CPU per 1024² chunk
(~0.08 µs per output pixel, cProfile; the rest of the engine: ~0.10); with the lattice of
stride 4 and labels by contiguous passes (:mod:`tilerun.classes.labels`), 0.014 µs
(``benchmarks/bench_pipeline.py``, 8192², row "run report's statistics"). Class counts stay
exact: they come from the labels, on every pixel.

The lattice is global — image rows and columns divisible by :data:`STRIDE` — so pieces
measured by different chunks fit together, each lattice pixel counted once.
"""

from __future__ import annotations

STRIDE = 4


def lattice(y: int, x: int, stride: int = STRIDE) -> tuple[slice, slice]:
    """Slices of an array whose first pixel is image pixel ``(y, x)`` that keep the lattice."""
    return slice(-y % stride, None, stride), slice(-x % stride, None, stride)
