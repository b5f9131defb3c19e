"""Options several commands share, defined once (as rasterio's ``rio/options.py`` does), so a
flag is spelled, named and explained the same way everywhere.

``predict``'s options come from :class:`tilerun.engine.options.PredictOptions`; these are the
small flags the other commands repeat. Each is a click decorator; the ones that name what
they act on take it as an argument (``overwrite_option("FILE")``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def overwrite_option(what: str = "the output") -> Callable[[F], F]:
    """``--overwrite``: replace an existing output; without it, an existing one is an error."""
    return click.option("--overwrite", is_flag=True, help=f"Replace {what} if it exists.")


def json_option(what: str) -> Callable[[F], F]:
    """``--json``: print ``what`` as one JSON object on stdout and nothing else there."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


#: ``--allow-pickle``: the user's opt-in to reading a pickled checkpoint (never by default)
allow_pickle_option = click.option(
    "--allow-pickle", is_flag=True,
    help="Read a pickled checkpoint (.pt/.pth/.ckpt) with torch's weights-only loader.",
)

#: a finished output: a Zarr store's path or an object-store URL
store_argument = click.argument("store")
