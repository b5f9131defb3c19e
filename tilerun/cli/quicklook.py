"""``tilerun quicklook``: a PNG of a prediction store's labels, one colour per class."""

from __future__ import annotations

from pathlib import Path

import click

from tilerun.cli.errors import exits_cleanly
from tilerun.cli.options import overwrite_option, store_argument


@click.command("quicklook")
@store_argument
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--max-size", default=1024, show_default=True, help="Longest edge of the PNG in pixels."
)
@click.option("--colours", help="Class colours, comma-separated #rrggbb [default: the store's].")
@overwrite_option("OUTPUT")
@exits_cleanly
def quicklook_command(
    store: str, output: Path, max_size: int, colours: str | None, overwrite: bool
) -> None:
    """Write a PNG quicklook of STORE's class labels (or the argmax of its logits)."""
    from tilerun.report.quicklook import write_quicklook
    from tilerun.words import ordinal

    chosen = [c.strip() for c in colours.split(",") if c.strip()] if colours else None
    look = write_quicklook(store, output, max_size, colours=chosen, overwrite=overwrite)
    legend = ", ".join(f"{n} {c}" for n, c in zip(look.class_names, look.colours, strict=False))
    step = f", every {ordinal(look.step)} pixel" if look.step > 1 else ""
    click.echo(
        f"wrote {look.path} ({look.width}×{look.height} from {look.variable}{step}; "
        f"colours from {look.colour_source}: {legend})"
    )
