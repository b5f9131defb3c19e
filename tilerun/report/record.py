"""The run report: what it holds, and its JSON form in the output's ``tilerun`` record.

A :class:`RunReport` is stored under the key :data:`REPORT_KEY` of the root ``tilerun``
attribute, as plain JSON (``None`` where a value is undefined, never NaN). Its parts:

* ``bands``: per input band, the streamed statistics and histogram
  (:mod:`tilerun.report.inputs`) and the drift from the training statistics
  (:mod:`tilerun.report.drift`);
* ``output``: label counts and fractions per class, entropy and low-confidence share
  (:mod:`tilerun.report.outputs`);
* ``timing``: model-call latency percentiles, model busy share, throughput
  (:mod:`tilerun.report.timing`).

The statistics cover the chunks computed by the run that wrote the store: after ``--resume``,
``chunks_resumed`` chunks written earlier are not in them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

REPORT_KEY = "report"
SCHEMA = 1


@dataclass(frozen=True)
class BandReport:
    """One input band: statistics over its valid pixels, histogram, drift."""

    name: str
    pixels: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    train_mean: float | None
    train_std: float | None
    mean_shift: float | None
    std_ratio: float | None
    drift: float | None
    drifted: bool
    #: histogram: ``len(hist)`` equal bins on ``[hist_lo, hist_hi)``, and counts outside
    hist_lo: float
    hist_hi: float
    hist: tuple[int, ...]
    below: int
    above: int


@dataclass(frozen=True)
class ClassReport:
    name: str
    pixels: int
    fraction: float | None


@dataclass(frozen=True)
class OutputReport:
    """Output statistics over valid pixels: classes over all ``pixels``; entropy (its mean,
    ``entropy_hist``: counts in equal bins on ``[0, 1]``) and the low-confidence share over the
    ``entropy_pixels`` valid pixels of a lattice (see :mod:`tilerun.report.outputs`)."""

    pixels: int
    activation: str
    classes: tuple[ClassReport, ...]
    entropy_mean: float | None
    entropy_hist: tuple[int, ...]
    low_confidence: float | None
    low_confidence_rule: str
    entropy_pixels: int = 0


@dataclass(frozen=True)
class TimingReport:
    """Model calls and throughput (``model_busy``: model seconds ÷ (wall seconds × devices))."""

    seconds: float
    batches: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    model_seconds: float
    model_busy: float | None
    devices: int
    mpx_per_s: float | None
    tiles_run: int
    tiles_skipped: int


@dataclass(frozen=True)
class RunReport:
    """Everything ``tilerun report`` shows (see the module docstring)."""

    schema: int
    chunks: int
    chunks_resumed: int
    drift_threshold: float
    bands: tuple[BandReport, ...]
    output: OutputReport
    timing: TimingReport

    @property
    def drifted_bands(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands if b.drifted)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples as lists, non-finite floats as None."""
        return plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        """The report stored by :meth:`to_dict`; ``ValueError`` when it does not fit."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError(f"run report schema {_get(data, 'schema')!r} is not {SCHEMA}")
        try:
            output = dict(data["output"])
            output["classes"] = tuple(ClassReport(**c) for c in output["classes"])
            output["entropy_hist"] = tuple(output["entropy_hist"])
            bands = tuple(BandReport(**{**b, "hist": tuple(b["hist"])}) for b in data["bands"])
            rest = {f.name: data[f.name] for f in fields(cls)
                    if f.name not in ("bands", "output", "timing")}
            return cls(bands=bands, output=OutputReport(**output),
                       timing=TimingReport(**data["timing"]), **rest)
        except (KeyError, TypeError) as err:
            raise ValueError(f"run report does not fit schema {SCHEMA} ({err})") from err


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else None


def plain(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) replaced by None and tuples by lists,
    recursively: Python's ``json`` would write ``NaN``/``Infinity``, which JSON parsers (and
    Zarr's attribute encoder) refuse."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def finite(value: float) -> float | None:
    """``value`` as a Python float, None when NaN or infinite."""
    number = float(value)
    return number if math.isfinite(number) else None
