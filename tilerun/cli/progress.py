"""The progress bar of ``tilerun predict``: chunks done, their rate, pixels per second, ETA.

Drawn by rich on stderr, only on a terminal (no bar, and none of its control codes, in logs
and pipes) and not with ``--quiet``; rich is imported only when a run starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Task
    from rich.text import Text


def rate_text(completed: float, pixels: float, elapsed: float | None) -> str:
    """``2.50 chunks/s, 1.31 Mpx/s`` averaged since the work started; ``–`` before the first
    chunk (a rate of nothing is not zero)."""
    if not elapsed or completed <= 0:
        return "– chunks/s, – Mpx/s"
    return f"{completed / elapsed:.2f} chunks/s, {pixels / elapsed / 1e6:.2f} Mpx/s"


def columns() -> tuple[Any, ...]:
    """The bar's columns: ``predict ━━━━━ 3/16 chunks 2.50 chunks/s, 1.31 Mpx/s 0:00:01 eta
    0:00:06``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Chunks and megapixels per second since the work started."""

        def render(self, task: Task) -> Text:
            text = rate_text(task.completed, task.fields.get("pixels", 0), task.elapsed)
            return Text(text, style="progress.data.speed")

    return (
        TextColumn("predict"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )


#: ``on_start(total_chunks)``, ``on_chunk(result)`` and ``on_phase(name, label)`` for
#: :func:`tilerun.run`
Callbacks = tuple[
    Callable[[int], None] | None, Callable[[Any], None] | None, Callable[[str, str], None] | None
]


@contextmanager
def progress_bar(console: Console) -> Iterator[Callbacks]:
    """The callbacks that drive a bar on ``console`` while the block runs; ``(None, None,
    None)`` where no bar is drawn (not a terminal, or ``--quiet``). Before the first chunk the
    bar says which phase the run is in (``0/? chunks · choosing the backend (cached choice:
    onnxruntime)``), not an unexplained ``0/?``."""
    if console.quiet or not console.is_terminal:
        yield None, None, None
        return
    from rich.progress import Progress

    with Progress(*columns(), console=console, transient=True) as bar:
        # The clock starts with the work, not while the model and backend are loaded.
        task = bar.add_task("chunks · starting", total=None, start=False, pixels=0)
        working = False

        def phased(name: str, label: str) -> None:
            if not working:
                bar.update(task, description=f"chunks · {label}")

        def started(total: int) -> None:
            nonlocal working
            working = True
            bar.update(task, total=total, description="chunks")
            bar.start_task(task)

        pixels = 0

        def done(result: Any) -> None:
            nonlocal pixels
            pixels += int(result.pixels)
            bar.update(task, advance=1, pixels=pixels)

        yield started, done, phased
