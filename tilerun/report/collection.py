"""The report of a job (``tilerun report OUTDIR``): its scenes side by side, and the scenes
the model should not be trusted on.

Per scene: its status and, from its output's run report (:mod:`tilerun.report.record`), each
input band's mean, spread and drift from the model's training statistics
(:mod:`tilerun.report.drift`). A scene is **not to be trusted** when a band drifted from the
training data, or when its input statistics *stand out from the rest of the collection*,
which needs no training statistics at all: for band ``b``, with the scenes' means ``m_s``,

    ``z_s = (m_s − median(m)) / max(1.4826 · MAD(m), 0.1 · median(σ))``

(MAD: the median absolute deviation, 1.4826 · MAD estimates a standard deviation robustly, so
one odd scene cannot hide itself by inflating it; the floor, a tenth of the scenes' typical
within-scene spread ``σ``, keeps near-identical scenes from being flagged for trifles), and
likewise ``z`` of ``ln σ_s`` with a floor of 0.1. A scene stands out where ``|z| >``
:data:`OUTLIER_Z` for some band. It takes :data:`MIN_SCENES` scenes with statistics to say.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tilerun.errors import InputError, TilerunError
from tilerun.report.record import BandReport, plain
from tilerun.report.stored import read_report
from tilerun.report.text import fmt
from tilerun.sinks.job_summary import JOB_FILE, JobSummary, read_job

OUTLIER_Z = 3.5
MIN_SCENES = 3
#: 1.4826 · MAD estimates σ for normal data
MAD_SIGMA = 1.4826


@dataclass(frozen=True)
class SceneReport:
    """One scene of the job: how it ended, its bands, and why not to trust it (if so)."""

    input: str
    output: str
    status: str
    bands: tuple[BandReport, ...] = ()
    #: one reason a line: a drifted band, or a band that stands out from the collection
    concerns: tuple[str, ...] = ()
    error: str | None = None

    @property
    def trusted(self) -> bool | None:
        """None: no statistics (failed, or no run report)."""
        return None if not self.bands else not self.concerns


@dataclass(frozen=True)
class CollectionReport:
    """The job's scenes with their statistics and concerns (see the module docstring)."""

    output_dir: str
    band_names: tuple[str, ...]
    scenes: tuple[SceneReport, ...]
    drift_threshold: float | None

    @property
    def untrusted(self) -> tuple[SceneReport, ...]:
        return tuple(s for s in self.scenes if s.concerns)

    def to_dict(self) -> dict[str, Any]:
        return plain(asdict(self) | {"untrusted": [s.input for s in self.untrusted]})


def job_folder_record(out_dir: str | Path) -> JobSummary | None:
    """The job record in ``out_dir``, or None when it is not a job's folder."""
    if str(out_dir).rstrip("/").endswith(".zarr"):
        return None
    return read_job(out_dir)


def collection_report(job: JobSummary) -> CollectionReport:
    """Read every finished scene's run report and find the scenes that stand out."""
    scenes, threshold = [], None
    for scene in job.scenes:
        if scene.status not in ("done", "skipped"):
            scenes.append(SceneReport(scene.input, scene.output, scene.status, error=scene.error))
            continue
        try:
            report, _ = read_report(scene.output)
        except TilerunError as err:  # removed since, or written without a report
            scenes.append(SceneReport(scene.input, scene.output, scene.status, error=str(err)))
            continue
        threshold = report.drift_threshold
        drifted = tuple(f"{b.name} drifted from the training data (drift {fmt(b.drift, '.2f')})"
                        for b in report.bands if b.drifted)
        scenes.append(SceneReport(scene.input, scene.output, scene.status, report.bands,
                                  drifted))
    scenes = _with_outliers(scenes)
    names = next((tuple(b.name for b in s.bands) for s in scenes if s.bands), ())
    return CollectionReport(job.output_dir, names, tuple(scenes), threshold)


def _with_outliers(scenes: list[SceneReport]) -> list[SceneReport]:
    measured = [s for s in scenes if s.bands]
    if len(measured) < MIN_SCENES or len({len(s.bands) for s in measured}) != 1:
        return scenes
    found: dict[str, list[str]] = {s.output: [] for s in measured}
    for b in range(len(measured[0].bands)):
        bands = [s.bands[b] for s in measured]
        if any(x.mean is None or x.std is None for x in bands):
            continue
        means = [float(x.mean or 0.0) for x in bands]
        spreads = [math.log(max(float(x.std or 0.0), 1e-12)) for x in bands]
        floor = 0.1 * statistics.median(float(x.std or 0.0) for x in bands)
        for scene, zm, zs in zip(measured, robust_z(means, floor), robust_z(spreads, 0.1),
                                 strict=True):
            name = scene.bands[b].name
            if abs(zm) > OUTLIER_Z:
                found[scene.output].append(f"{name} mean {zm:+.1f} robust σ from the "
                                           "collection's")
            if abs(zs) > OUTLIER_Z:
                found[scene.output].append(f"{name} spread {zs:+.1f} robust σ from the "
                                           "collection's")
    return [s if not found.get(s.output) else
            SceneReport(s.input, s.output, s.status, s.bands, (*s.concerns, *found[s.output]),
                        s.error) for s in scenes]


def robust_z(values: Sequence[float], floor: float) -> list[float]:
    """``(v − median) / max(1.4826 · MAD, floor)`` for each value (module docstring)."""
    centre = statistics.median(values)
    mad = statistics.median(abs(v - centre) for v in values)
    scale = max(MAD_SIGMA * mad, floor, 1e-12)
    return [(v - centre) / scale for v in values]


def print_collection(report: CollectionReport, console: Console) -> None:
    """The scenes side by side (status, per-band mean and drift), then the concerns."""
    threshold = "" if report.drift_threshold is None else f", drift > {report.drift_threshold:g}" \
        " is flagged"
    table = Table(title=f"job {report.output_dir}: {len(report.scenes)} scenes (per band: "
                  f"mean / drift from training{threshold})", title_justify="left")
    table.add_column("scene")
    table.add_column("status")
    for name in report.band_names:
        table.add_column(name, justify="right")
    table.add_column("trust")
    for s in report.scenes:
        cells = [f"{fmt(b.mean, '.4g')} / {fmt(b.drift, '.2f')}" for b in s.bands] or \
            ["–"] * len(report.band_names)
        trust = {None: "–", True: "ok", False: "NO"}[s.trusted]
        table.add_row(Path(s.input).name, s.status, *cells, trust,
                      style="bold red" if s.concerns else None)
    console.print(table)
    untrusted = report.untrusted
    if not untrusted:
        console.print(f"no scene stands out (robust |z| ≤ {OUTLIER_Z:g} on every band) and "
                      "none drifted from the training data")
    for s in untrusted:
        console.print(f"do not trust {s.input}: " + "; ".join(s.concerns))
    for s in report.scenes:
        if s.error:
            console.print(f"{s.status}: {s.error}")


def read_collection(out_dir: str | Path) -> CollectionReport:
    """The report of the job in ``out_dir``; one error line when it holds no job record."""
    job = job_folder_record(out_dir)
    if job is None:
        raise InputError(out_dir, f"holds no {JOB_FILE}; is it a tilerun job's output folder?")
    return collection_report(job)
