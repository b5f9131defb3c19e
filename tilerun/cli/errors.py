"""Turn library errors into one line on stderr and exit code 2."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

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
