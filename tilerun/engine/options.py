"""The options of a prediction run, validated once in one place."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from tilerun.backends.names import CHOICES as BACKENDS
from tilerun.errors import OptionError

SCHEDULERS = ("threads", "sync", "processes")
PRECISIONS = ("fp32", "bf16", "fp16")
TTA_MODES = ("none", "flips", "d4")
PYRAMIDS = ("auto", "none", "labels", "labels,probabilities")
#: How stacked bands coarser than the finest are resampled (see tilerun.sources.stack).
RESAMPLINGS = ("nearest", "bilinear", "cubic", "average", "mode")
#: Worker processes of a local cluster when ``--workers`` is not given.
DEFAULT_WORKERS = 2
#: The smallest output chunk edge. A chunk is a pair of Dask tasks and a file per variable,
#: and each write gathers partial sums from (⌈T/Z⌉ + 1)² chunks, so the graph grows with the
#: inverse square of the chunk: ``--chunk 1`` built hundreds of millions of dependencies and
#: never started. 8 px is the smallest chunk that still has a use (tests of the chunk plan on
#: tiny images); :func:`tilerun.engine.budget.check_chunk` also bounds it against the tile.
MIN_CHUNK = 8


@dataclass(frozen=True)
class PredictOptions:
    """Every knob of :func:`tilerun.predict` (the CLI flags map one to one).

    ``tile``/``overlap`` default to the model spec's recommendation, else 256 and 0.25;
    ``overlap`` is a fraction of the tile (float) or pixels (int). ``chunk`` is the output Zarr
    chunk edge in pixels and the unit of work. ``output`` names the variables to write, any of
    ``logits`` (stored as ``dtype``), ``labels`` and ``probabilities`` (uint8 softmax/sigmoid
    probabilities; see :mod:`tilerun.sinks.layout`). ``scheduler``: ``threads`` (Dask's threaded
    scheduler, the default), ``sync`` (one thread, for debugging), ``processes`` (a local
    ``distributed.LocalCluster`` of ``workers`` processes) or the address of a Dask scheduler
    (``tcp://host:8786``). ``threads`` is the thread count (default: the machine's cores + 2,
    see :attr:`thread_count`), per worker process on a cluster. ``precision`` is the
    model's precision (blending is float32 whatever it is); ``tta`` averages each tile over
    flips (4 views) or the dihedral group (8 views). ``backend`` runs the model on eager
    ``torch``, ``compile`` (``torch.compile``), ``onnxruntime`` or ``openvino``; ``auto`` picks
    the fastest installed one that matches eager torch on a probe batch (see
    :mod:`tilerun.backends.select`).

    Slides: ``mpp`` resamples to exactly that many µm per pixel (default: the model's, when its
    spec is in µm), ``level`` takes a pyramid level as is, ``slide_mpp`` overrides missing or
    wrong scanner metadata. ``tissue`` is ``auto`` (detect on a thumbnail; slides only),
    ``none``, or a mask image/Zarr path; tiles with no tissue under them are not run.
    ``pyramid`` adds OME-NGFF multiscale pyramids for viewers (``auto``: labels, for slides).
    ``zarr_format``: 3 (default), or 2 for the GDAL in today's rasterio/QGIS builds, which
    reads Zarr v2 but not v3's ``bytes`` codec (no viewer pyramids then: OME-Zarr 0.5 is v3).

    ``bands``: 1-based numbers and/or names (``red``, ``B04``: see
    :mod:`tilerun.sources.bandnames`); None takes the bands the model's spec names when the
    input names its bands, else all. ``resampling``: how stacked bands (per-band files, STAC
    assets) coarser than the finest are resampled onto its grid.
    """

    tile: int | None = None
    overlap: float | int | None = None
    blend: str = "gaussian"
    sigma: float = 0.125
    batch_size: int = 8
    chunk: int = 1024
    bands: tuple[int | str, ...] | None = None
    device: str = "auto"
    output: tuple[str, ...] = ("logits",)
    dtype: str = "float32"
    overwrite: bool = False
    scheduler: str = "threads"
    threads: int | None = None
    workers: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    precision: str = "fp32"
    backend: str = "auto"
    tta: str = "none"
    allow_pickle: bool = False
    pixel_size_tolerance: float = 0.1
    mpp: float | None = None
    level: int | None = None
    slide_mpp: float | None = None
    tissue: str = "auto"
    pyramid: str = "auto"
    resume: bool = False
    zarr_format: int = 3
    resampling: str = "nearest"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise OptionError("--batch-size", f"must be ≥ 1, got {self.batch_size}")
        if self.chunk < MIN_CHUNK:
            raise OptionError("--chunk", f"must be ≥ {MIN_CHUNK} px, got {self.chunk} (each "
                              "chunk is a task and a file per variable; 1024 suits most runs)")
        if self.overlap is not None and not 0 <= self.overlap < float("inf"):
            raise OptionError("--overlap", f"must be a fraction in [0, 1) or pixels ≥ 0, got "
                              f"{self.overlap}")
        if self.scheduler not in SCHEDULERS and "://" not in self.scheduler:
            choices = f"choose from {SCHEDULERS} or a tcp:// address"
            raise OptionError("--scheduler", f"{choices}, got {self.scheduler!r}")
        if self.threads is not None and self.threads < 1:
            raise OptionError("--threads", f"must be ≥ 1, got {self.threads}")
        if self.precision not in PRECISIONS:
            raise OptionError("--precision", f"choose from {PRECISIONS}, got {self.precision!r}")
        if self.backend not in BACKENDS:
            raise OptionError("--backend", f"choose from {BACKENDS}, got {self.backend!r}")
        if self.tta not in TTA_MODES:
            raise OptionError("--tta", f"choose from {TTA_MODES}, got {self.tta!r}")
        if not self.pixel_size_tolerance >= 0:
            raise OptionError("--pixel-size-tolerance", "must be ≥ 0")
        if self.pyramid not in PYRAMIDS:
            raise OptionError("--pyramid", f"choose from {PYRAMIDS}, got {self.pyramid!r}")
        if self.mpp is not None and self.level is not None:
            raise OptionError("--mpp", "give --mpp or --level, not both")
        if self.workers is not None and self.workers < 1:
            raise OptionError("--workers", f"must be ≥ 1, got {self.workers}")
        if self.resampling not in RESAMPLINGS:
            raise OptionError("--resampling", f"choose from {RESAMPLINGS}, got "
                              f"{self.resampling!r}")
        if self.zarr_format not in (2, 3):
            raise OptionError("--zarr-format", f"choose 2 or 3, got {self.zarr_format!r}")

    @property
    def thread_count(self) -> int:
        """Default: the cores plus 2. A thread holds one chunk from its read to its write and
        mostly waits for the compute stage meanwhile, so a few more threads than cores keep
        enough chunks in flight to fill batches and hide reads (measured on 2 cores with a
        simulated device: 4 threads kept it 86 % busy, 2 threads 70 %)."""
        return self.threads if self.threads is not None else max(2, os.cpu_count() or 1) + 2

    @property
    def distributed(self) -> bool:
        """Whether the run goes through dask.distributed (a local cluster or a scheduler)."""
        return self.scheduler == "processes" or "://" in self.scheduler or bool(self.workers)

    @classmethod
    def from_kwargs(cls, **kwargs: object) -> PredictOptions:
        """Accept lists where tuples are stored, and reject unknown names with a clear error."""
        known = set(cls.__dataclass_fields__)
        unknown = set(kwargs) - known
        if unknown:
            raise OptionError(
                ", ".join(sorted(unknown)), f"unknown option(s); known: {sorted(known)}"
            )
        if isinstance(kwargs.get("bands"), str):  # "red,green,blue" or "3,2,1"
            from tilerun.sources.bandnames import parse_band_list

            kwargs["bands"] = parse_band_list(str(kwargs["bands"]))
        for key in ("bands", "output", "mean", "std"):
            value = kwargs.get(key)
            if isinstance(value, str):
                kwargs[key] = (value,)
            elif isinstance(value, Sequence):
                kwargs[key] = tuple(value)
        return cls(**kwargs)  # type: ignore[arg-type]
