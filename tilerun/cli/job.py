"""``tilerun predict IN1 IN2 … -o OUTDIR``: a job of many scenes (see :mod:`tilerun.engine.job`).

Output: one line per scene as it ends (``done``/``skipped`` on stdout, ``error: …`` on stderr,
so a failure is one line naming its input), a progress display on a terminal (the job's
scenes, pixels, rate and ETA, with the current scene's chunks under it), then the job's table
and a totals line. Exit code 2 when any input failed, 0 when all are done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tilerun.cli.jsonout import json_line
from tilerun.engine.job import JobEvents
from tilerun.engine.options import PredictOptions
from tilerun.errors import OptionError
from tilerun.sinks.job_summary import JOB_FILE, JobSummary, SceneResult

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


def run_job(inputs: Sequence[str], out: str | None, model: Any, opts: PredictOptions,
            console: Console, *, quiet: bool, as_json: bool) -> None:
    """Run the job and report it; exits 2 when any input failed, 130 on Ctrl-C."""
    from tilerun.engine.job import predict_many

    if out is None:
        raise OptionError("-o", f"{len(inputs)} inputs (or a folder, glob, @list or STAC "
                          "collection) need an output folder: pass -o OUTDIR")
    with _progress(console) as progress:
        events = _Lines(console, progress, as_json)
        try:
            summary = predict_many(list(inputs), model, out, opts, events=events)
        except KeyboardInterrupt:
            click.echo(f"aborted: finished scenes are kept and {out.rstrip('/')}/{JOB_FILE} "
                       "records them; unfinished stores keep their chunks: run the same "
                       "command with --resume to continue", err=True)
            raise SystemExit(130) from None
    if as_json:
        click.echo(json_line(summary.to_dict()))
    else:
        if not quiet:
            _print_table(summary, console)
        for note in summary.renamed:
            click.echo(f"note: {note}", err=True)
        click.echo(totals_line(summary))
    if summary.exit_code:
        raise SystemExit(summary.exit_code)


def model_for_job(inputs: Sequence[str], opts: PredictOptions) -> tuple[Any, bool]:
    """The bundled demo model for the first input that opens (its band count chooses the demo
    model; an input it does not suit then fails alone)."""
    from tilerun.errors import TilerunError
    from tilerun.models.default import default_model
    from tilerun.sources import open_source
    from tilerun.sources.inputs import expand_inputs, scene_source

    for entry in expand_inputs(inputs):
        if entry.problem is not None:
            continue
        try:
            ref, _ = scene_source(entry, opts.bands)
            bands = open_source(ref, opts.bands, level=0).shape[0]
        except (TilerunError, OSError):
            continue
        return default_model(bands)
    return default_model(3)


def scene_line(scene: SceneResult) -> str:
    """One line for a scene that ended (plain text, never wrapped)."""
    if scene.status == "failed":
        return f"error: {scene.error}"
    if scene.status == "skipped":
        return f"skipped {scene.input}: {scene.output} is already complete"
    if scene.status != "done":
        return f"{scene.status} {scene.input}"
    resumed = f", {scene.chunks_resumed} chunks kept from before" if scene.chunks_resumed else ""
    return (f"done {scene.input} → {scene.output}: {scene.tiles} tiles{resumed}, "
            f"{scene.seconds:.1f} s")


def totals_line(summary: JobSummary) -> str:
    t = summary.totals()
    rate = summary.pixels / summary.seconds / 1e6 if summary.seconds > 0 else 0.0
    where = f"{summary.output_dir.rstrip('/')}/{JOB_FILE}"
    return (f"job: {t['done']} done, {t['skipped']} skipped, {t['failed']} failed of "
            f"{t['inputs']} inputs; {t['tiles']} tiles in {summary.seconds:.1f} s "
            f"({rate:.2f} Mpx/s; model prepared once in {summary.prepare_seconds:.1f} s) "
            f"→ {where}")


def _print_table(summary: JobSummary, console: Console) -> None:
    from rich.console import Console as Plain
    from rich.table import Table

    table = Table(title=f"job → {summary.output_dir}", title_justify="left")
    for name in ("input", "output", "status", "tiles", "seconds", "error"):
        table.add_column(name, justify="right" if name in ("tiles", "seconds") else "left",
                         overflow="fold")
    for s in summary.scenes:
        table.add_row(s.input, Path(s.output).name, s.status, str(s.tiles),
                      f"{s.seconds:.1f}", s.error or "")
    Plain(width=max(console.width, 120)).print(table)


class _Lines(JobEvents):
    """Prints each scene's line as it ends and drives the progress display, if any."""

    def __init__(self, console: Console, progress: _Bars | None, as_json: bool) -> None:
        self.console, self.progress, self.as_json = console, progress, as_json
        self._lock = threading.Lock()

    def job_started(self, scenes: Sequence[SceneResult]) -> None:
        if self.progress is not None:
            self.progress.start(len(scenes))

    def scene_started(self, index: int, scene: SceneResult, chunks: int) -> None:
        if self.progress is not None:
            self.progress.scene(index, Path(scene.input).name, chunks)

    def chunk_done(self, index: int, result: Any) -> None:
        if self.progress is not None:
            self.progress.chunk(index, int(result.pixels))

    def scene_done(self, index: int, scene: SceneResult) -> None:
        with self._lock:
            line = scene_line(scene)
            if scene.status == "failed":
                click.echo(line, err=True)
            elif not self.as_json:
                click.echo(line)
        if self.progress is not None:
            self.progress.scene_done(index)


class _Bars:
    """The job's bar (scenes, Mpx/s, ETA) with the current scene's chunks under it."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.job: TaskID = bar.add_task("job", total=None, start=False, unit="scenes",
                                        pixels=0)
        self.current: TaskID | None = None
        self.current_index = -1
        self.pixels = self.scene_pixels = 0
        self._lock = threading.Lock()

    def start(self, scenes: int) -> None:
        self.bar.update(self.job, total=scenes)
        self.bar.start_task(self.job)

    def scene(self, index: int, name: str, chunks: int) -> None:
        with self._lock:
            if self.current is not None:
                self.bar.remove_task(self.current)
            self.current_index, self.scene_pixels = index, 0
            self.current = self.bar.add_task(f"  {name}", total=chunks, unit="chunks",
                                             pixels=0)

    def chunk(self, index: int, pixels: int) -> None:
        with self._lock:
            self.pixels += pixels
            self.bar.update(self.job, pixels=self.pixels)
            if index == self.current_index and self.current is not None:
                self.scene_pixels += pixels
                self.bar.update(self.current, advance=1, pixels=self.scene_pixels)

    def scene_done(self, index: int) -> None:
        with self._lock:
            self.bar.update(self.job, advance=1)


@contextmanager
def _progress(console: Console) -> Iterator[_Bars | None]:
    """The bars on a terminal; None with ``--quiet`` or when stderr is not a terminal."""
    if console.quiet or not console.is_terminal:
        yield None
        return
    from rich.progress import Progress

    with Progress(*_columns(), console=console, transient=True) as bar:
        yield _Bars(bar)


def _columns() -> tuple[Any, ...]:
    """``job ━━━ 3/16 scenes 1.31 Mpx/s 0:00:04 eta 0:00:17``, and under it the scene's
    ``  s4.tif ━━━ 2/9 chunks …``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        """Megapixels written per second since the task started."""

        def render(self, task: Task) -> Text:
            pixels, elapsed = task.fields.get("pixels", 0), task.elapsed
            text = f"{pixels / elapsed / 1e6:.2f} Mpx/s" if elapsed and pixels else "– Mpx/s"
            return Text(text, style="progress.data.speed")

    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"), Rate(), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn())
