"""Where a run's wall time goes, phase by phase, so the summary adds up to what a user waits.

A run before its first tile opens the input and the output (``opening``), loads and probes the
model (``model``), chooses its backend (``backend``: converting, checking and, on ``auto``'s
first run on a machine, racing the candidates; or loading an earlier choice from the cache),
plans the chunks and opens the store (``planning``); then it runs (``work``) and finishes the
store (``finishing``: the report, the record, pyramids, the rename). Measured once, the start-up
was 9-19 s while the summary said 1.3 s: the user saw only the last phase.

:func:`clock` starts a recorder for one run in the current context; :func:`phase` (a no-op
outside one) times a step into it and tells the ``on_phase`` callback its name first, so a
progress bar can say what is happening before the first chunk. The seconds of the phases and
the gaps between them add up to the recorder's wall time (``other`` holds the gaps).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: the phases in the order a run passes them, with the words a progress bar shows
LABELS = {
    "opening": "opening the input and output",
    "model": "loading the model",
    "backend": "choosing the backend",
    "planning": "planning the chunks",
    "work": "running",
    "finishing": "finishing the store",
}

PhaseCallback = Callable[[str, str], None]

#: when the command line began (:func:`command_started`), for its start-up figure
_COMMAND_STARTED: list[float] = []


def command_started(process: bool) -> None:
    """Mark the start of a command (the ``tilerun`` group calls it first thing). ``process``:
    the command is the process (``tilerun …`` on a command line), so it began when the process
    did (Python's own start-up and the imports count too); else now (a command invoked inside
    another program, as tests do)."""
    age = _process_age() if process else None
    now = time.perf_counter()
    _COMMAND_STARTED[:] = [now - age if age is not None and age < 60.0 else now]


def _process_age() -> float | None:
    """Seconds since this process started (Linux's /proc; None elsewhere)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(uptime - ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


def since_command_start() -> float:
    """Seconds since :func:`command_started` (0 when it was not called)."""
    return time.perf_counter() - _COMMAND_STARTED[0] if _COMMAND_STARTED else 0.0


@dataclass
class PhaseClock:
    """Seconds per phase of one run (mutable: filled as the run goes)."""

    on_phase: PhaseCallback | None = None
    started: float = field(default_factory=time.perf_counter)
    seconds: dict[str, float] = field(default_factory=dict)
    #: a word on a phase, e.g. the backend's ``cached`` or ``raced 3``
    notes: dict[str, str] = field(default_factory=dict)

    def wall(self) -> float:
        return time.perf_counter() - self.started

    def breakdown(self) -> dict[str, float]:
        """Seconds per phase in run order, plus ``other`` (between phases), adding up to
        :meth:`wall` as measured now."""
        timed = {name: self.seconds[name] for name in LABELS if name in self.seconds}
        other = self.wall() - sum(timed.values())
        return {**timed, "other": max(other, 0.0)}


_CURRENT: contextvars.ContextVar[PhaseClock | None] = contextvars.ContextVar(
    "tilerun_phase_clock", default=None)


@contextlib.contextmanager
def clock(on_phase: PhaseCallback | None = None) -> Iterator[PhaseClock]:
    """A recorder for the run inside the block (nested runs get their own)."""
    recorder = PhaseClock(on_phase)
    token = _CURRENT.set(recorder)
    try:
        yield recorder
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def phase(name: str, note: str | None = None) -> Iterator[None]:
    """Time ``name`` into the current recorder (seconds add up if it is entered again)."""
    recorder = _CURRENT.get()
    if recorder is None:
        yield
        return
    if note is not None:
        recorder.notes[name] = note
    if recorder.on_phase is not None:
        label = LABELS[name] + (f" ({note})" if note else "")
        recorder.on_phase(name, label)
    start = time.perf_counter()
    try:
        yield
    finally:
        recorder.seconds[name] = recorder.seconds.get(name, 0.0) + time.perf_counter() - start


def note(name: str, text: str) -> None:
    """Add a word on phase ``name`` to the current recorder (e.g. ``cached``), and show the
    phase's label again with it."""
    recorder = _CURRENT.get()
    if recorder is not None:
        recorder.notes[name] = text
        if recorder.on_phase is not None:
            recorder.on_phase(name, f"{LABELS[name]} ({text})")


def breakdown_text(seconds: dict[str, float], notes: dict[str, str] | None = None) -> str:
    """``opening 0.1, model 0.3, backend 0.9 (cached), planning 0.1, work 0.7, …`` (phases
    under 0.05 s are left out, other than ``work``)."""
    notes = notes or {}
    parts = []
    for name, value in seconds.items():
        if value < 0.05 and name != "work":
            continue
        extra = f" ({notes[name]})" if name in notes else ""
        parts.append(f"{name} {value:.1f}{extra}")
    return ", ".join(parts)
