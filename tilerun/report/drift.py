"""Input drift: how far each band's pixels are from the model's training statistics.

The model spec holds the training data's ``mean`` ``μ_t`` and ``std`` ``σ_t`` per band (its
normalisation; a spec that scales by the pixel type's range, or not at all, holds none, and
then no drift is computed). With the run's own ``μ`` and ``σ`` per band
(:mod:`tilerun.report.inputs`):

* **mean shift** ``z = |μ − μ_t| / σ_t``: how many training standard deviations the mean moved;
* **std ratio** ``r = σ / σ_t``;
* **drift** ``d = max(z, |ln r|)``: 0 for data like the training data; 1 when the mean moved by
  one training std, or the spread grew or shrank by a factor ``e`` (2.7).

A band with ``d >`` :data:`DRIFT_THRESHOLD` (1.0) is reported as drifted and the run warns
(:class:`DriftWarning`, one line). The threshold is loose on purpose: a scene is not a random
sample of the training data, and its class mix alone moves both moments (the demo model's
synthetic scenes of 128² pixels: ``z`` up to 0.75 and ``|ln r|`` up to 0.75; at 1024², up to
0.2 and 0.13), while the failures worth a warning move them by more: 16-bit or reflectance data
for an 8-bit model (``d`` far above 1), a scene half as bright (``d`` ≈ 1.8 in the demo
model's green band), haze or an offset of 50 grey levels (``d`` ≈ 1.6). A swapped band order
moves the demo model's bands by ``d`` ≤ 0.9 only, and is not caught.

Why not a population stability index against a normal fitted to ``μ_t``, ``σ_t``: image bands
are multimodal (one mode per land cover), so such a PSI is large even for the training data
itself; the two moments are all a spec holds, and they are compared directly.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from tilerun.errors import DriftWarning
from tilerun.report.record import BandReport

DRIFT_THRESHOLD = 1.0


@dataclass(frozen=True)
class BandDrift:
    """One band's drift from its training statistics (formulas in the module docstring)."""

    mean_shift: float
    std_ratio: float
    drift: float

    @property
    def drifted(self) -> bool:
        return self.drift > DRIFT_THRESHOLD


def band_drift(mean: float, std: float, train_mean: float, train_std: float) -> BandDrift | None:
    """``z``, ``r`` and ``d`` for one band; None when the band had no valid pixel."""
    if not (math.isfinite(mean) and math.isfinite(std)) or train_std <= 0:
        return None
    z = abs(mean - train_mean) / train_std
    r = std / train_std
    d = max(z, abs(math.log(r))) if r > 0 else math.inf
    return BandDrift(z, r, d)


def drift_message(subject: str, bands: Sequence[BandReport]) -> str | None:
    """One line naming every drifted band, or None when no band drifted."""
    parts = [
        f"{b.name} mean {_num(b.mean, '.4g')} vs {_num(b.train_mean, '.4g')} in training "
        f"({_num(b.mean_shift, '.2f')} training std off, spread {_num(b.std_ratio, '.2f')}×, "
        f"drift {_num(b.drift, '.2f')})"
        for b in bands if b.drifted
    ]
    if not parts:
        return None
    return (f"{subject}: input unlike the model's training data (drift > {DRIFT_THRESHOLD:g}); "
            f"predictions may be unreliable: " + "; ".join(parts))


def _num(value: float | None, spec: str) -> str:
    return "∞" if value is None else format(value, spec)


def warn_drift(message: str | None) -> None:
    """Warn with ``message`` (one line) when there is one."""
    if message is not None:
        warnings.warn(message, DriftWarning, stacklevel=3)
