"""Turn library errors into one line on stderr and exit code 2, and warnings into one line.

Imports nothing heavy: every command module imports this to print ``--help``.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TextIO, TypeVar

import click

from tilerun.errors import TilerunError

F = TypeVar("F", bound=Callable[..., Any])


def exits_cleanly(func: F) -> F:
    """Print ``error: <file>: <problem>`` and exit 2 for any :class:`TilerunError`; show
    warnings as ``warning: <message>`` lines (see :func:`one_line_warnings`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with one_line_warnings():
                return func(*args, **kwargs)
        except TilerunError as err:
            click.echo(f"error: {err}", err=True)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show warnings (tilerun's and its libraries') as one ``warning: <message>`` line on
    stderr, without Python's category, source line and location (those are for library users,
    who see them as usual). Every command runs inside it (the ``tilerun`` group and
    :func:`exits_cleanly` both enter it)."""
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
        # sys.stderr as it is now: while a progress bar is drawn, rich's proxy of it, which
        # prints the line above the bar instead of into it
        click.echo(f"warning: {text}", file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original
