"""Turn library errors into one line on stderr and exit code 2."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TextIO, TypeVar

import click

from tilerun.errors import TilerunError

F = TypeVar("F", bound=Callable[..., Any])


def exits_cleanly(func: F) -> F:
    """Print ``error: <file>: <problem>`` and exit 2 for any :class:`TilerunError`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TilerunError as err:
            click.echo(f"error: {err}", err=True)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show tilerun's warnings as ``warning: <message>`` on stderr, without Python's source
    line and location (those are for library users, who see them as usual)."""
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        click.echo(f"warning: {message}", err=True)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original
