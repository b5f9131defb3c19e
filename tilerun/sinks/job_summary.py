"""The record of a job: one entry per input, kept in ``OUTDIR/tilerun-job.json``.

The record is rewritten (atomically: a temporary file renamed over it; in object storage, one
put) each time a scene ends, so a job killed at any moment leaves a record of every scene it
finished; each scene's own store keeps its chunks (``--resume`` continues them). The record
is what ``tilerun report OUTDIR`` reads to show the job.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tilerun._version import __version__
from tilerun.errors import OutputError, first_line
from tilerun.sinks.objects import object_url

JOB_FILE = "tilerun-job.json"
#: What a scene can end as. ``pending``/``interrupted``: the job stopped before or during it.
STATUSES = ("done", "skipped", "failed", "interrupted", "pending")


@dataclass(frozen=True)
class SceneResult:
    """One input of a job: where its output went, how it ended, its tiles and seconds.

    ``status``: ``done`` (written now), ``skipped`` (``--resume`` found it complete),
    ``failed`` (``error`` says why, one line naming the input), ``interrupted`` or
    ``pending`` (the job stopped). ``seconds``: from opening the input to the published
    output, less the wait for the threads; scenes overlap, so they may add up to more than
    the job's wall time.
    """

    input: str
    output: str
    status: str = "pending"
    error: str | None = None
    tiles: int = 0
    pixels: int = 0
    chunks_resumed: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class JobSummary:
    """What a job did (and what ``OUTDIR/tilerun-job.json`` holds)."""

    output_dir: str
    model: str
    scenes: tuple[SceneResult, ...]
    seconds: float = 0.0
    #: model loading, probing and backend choice, paid once for the whole job
    prepare_seconds: float = 0.0
    backends: tuple[str, ...] = ()
    #: how colliding input names were told apart (see :func:`~tilerun.sources.inputs.output_stems`)
    renamed: tuple[str, ...] = ()
    finished: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for s in self.scenes if s.status == status)

    @property
    def exit_code(self) -> int:
        """0 when every input is done or was already complete, else 2."""
        return 0 if all(s.status in ("done", "skipped") for s in self.scenes) else 2

    @property
    def tiles(self) -> int:
        return sum(s.tiles for s in self.scenes)

    @property
    def pixels(self) -> int:
        return sum(s.pixels for s in self.scenes)

    def totals(self) -> dict[str, Any]:
        counts = {status: self.count(status) for status in STATUSES}
        return {"inputs": len(self.scenes), **counts, "tiles": self.tiles,
                "pixels": self.pixels, "seconds": self.seconds,
                "prepare_seconds": self.prepare_seconds}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scenes"] = [asdict(s) for s in self.scenes]
        data.update(backends=list(self.backends), renamed=list(self.renamed),
                    totals=self.totals(), exit_code=self.exit_code, version=__version__)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSummary:
        names = set(cls.__dataclass_fields__)
        scene_names = set(SceneResult.__dataclass_fields__)
        kept = {k: v for k, v in data.items() if k in names}
        kept["scenes"] = tuple(SceneResult(**{k: v for k, v in s.items() if k in scene_names})
                               for s in data.get("scenes", ()))
        kept["backends"] = tuple(kept.get("backends", ()))
        kept["renamed"] = tuple(kept.get("renamed", ()))
        return cls(**kept)


class JobRecord:
    """The job's summary as it goes, written to ``OUTDIR/tilerun-job.json`` at each change."""

    def __init__(self, summary: JobSummary) -> None:
        self.summary = summary
        self._lock = threading.Lock()
        self._started = time.perf_counter()

    def scene(self, index: int, result: SceneResult) -> None:
        with self._lock:
            scenes = list(self.summary.scenes)
            scenes[index] = result
            self.summary = replace(self.summary, scenes=tuple(scenes),
                                   seconds=time.perf_counter() - self._started)
            write_job(self.summary)

    def finish(self, **changes: Any) -> JobSummary:
        with self._lock:
            self.summary = replace(self.summary, seconds=time.perf_counter() - self._started,
                                   **changes)
            write_job(self.summary)
            return self.summary


def write_job(summary: JobSummary) -> None:
    """Write the record into the job's folder (or bucket prefix) in one step."""
    text = json.dumps(summary.to_dict(), indent=1, default=str) + "\n"
    url = object_url(summary.output_dir)
    if url is not None:
        from tilerun.sinks.objects import ObjectLocation

        ObjectLocation(url).put(JOB_FILE, text.encode())
        return
    folder = Path(summary.output_dir)
    try:
        with tempfile.NamedTemporaryFile("w", dir=folder, prefix=".tilerun-job.",
                                         suffix=".tmp", delete=False, encoding="utf-8") as tmp:
            tmp.write(text)
        os.replace(tmp.name, folder / JOB_FILE)
    except OSError as err:
        raise OutputError(folder / JOB_FILE, f"cannot write the job record "
                          f"({err.strerror or first_line(err)})") from err


def read_job(out_dir: str | Path) -> JobSummary | None:
    """The record in ``out_dir`` (a folder or bucket prefix), or None when there is none."""
    url = object_url(str(out_dir))
    if url is not None:
        from tilerun.sinks.objects import ObjectLocation

        found = ObjectLocation(url).get(JOB_FILE)
        text = None if found is None else found.data.decode()
    else:
        path = Path(out_dir) / JOB_FILE
        text = path.read_text(encoding="utf-8") if path.is_file() else None
    if text is None:
        return None
    try:
        return JobSummary.from_dict(json.loads(text))
    except (ValueError, TypeError) as err:
        raise OutputError(f"{out_dir}/{JOB_FILE}", f"is not a tilerun job record "
                          f"({first_line(err)})") from err
