"""The options of a prediction run, validated once in one place."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from tilerun.errors import OptionError

SCHEDULERS = ("threads", "sync")


@dataclass(frozen=True)
class PredictOptions:
    """Every knob of :func:`tilerun.predict` (the CLI flags map one to one).

    ``overlap`` is a fraction of the tile (float) or pixels (int). ``chunk`` is the output Zarr
    chunk edge in pixels and the unit of work. ``workers`` is the number of threads (default:
    the machine's cores, at least 2 so that reading overlaps compute).
    """

    tile: int = 256
    overlap: float | int = 0.25
    blend: str = "gaussian"
    sigma: float = 0.125
    batch_size: int = 8
    chunk: int = 1024
    bands: tuple[int, ...] | None = None
    device: str = "auto"
    output: tuple[str, ...] = ("logits",)
    dtype: str = "float32"
    overwrite: bool = False
    scheduler: str = "threads"
    workers: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise OptionError("--chunk", f"must be ≥ 1, got {self.chunk}")
        if self.scheduler not in SCHEDULERS:
            raise OptionError("--scheduler", f"choose from {SCHEDULERS}, got {self.scheduler!r}")
        if self.workers is not None and self.workers < 1:
            raise OptionError("--workers", f"must be ≥ 1, got {self.workers}")

    @property
    def threads(self) -> int:
        return self.workers if self.workers is not None else max(2, os.cpu_count() or 1)

    @classmethod
    def from_kwargs(cls, **kwargs: object) -> PredictOptions:
        """Accept lists where tuples are stored, and reject unknown names with a clear error."""
        known = set(cls.__dataclass_fields__)
        unknown = set(kwargs) - known
        if unknown:
            raise OptionError(
                ", ".join(sorted(unknown)), f"unknown option(s); known: {sorted(known)}"
            )
        for key in ("bands", "output", "mean", "std"):
            value = kwargs.get(key)
            if isinstance(value, str):
                kwargs[key] = (value,)
            elif isinstance(value, Sequence):
                kwargs[key] = tuple(value)
        return cls(**kwargs)  # type: ignore[arg-type]
