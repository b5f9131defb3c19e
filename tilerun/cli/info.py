"""``tilerun info``: is an output complete, and if not, how far did its run get?"""

from __future__ import annotations

from pathlib import Path

import click

from tilerun.cli.errors import exits_cleanly
from tilerun.sinks.store import OutputStore


@click.command("info")
@click.argument("store", type=click.Path(path_type=Path))
@exits_cleanly
def info_command(store: Path) -> None:
    """Say whether STORE (or its unfinished STORE.partial) is complete, and how far it got."""
    output = OutputStore(store)
    path = output.located()
    attrs = output.record(path)
    done = output.chunks_done(path)
    total = done.size if done is not None else 0
    written = int(done.sum()) if done is not None else 0
    if attrs.get("complete"):
        click.echo(f"{store}: complete ({total} chunks)")
    else:
        holder = output.holder()
        state = f"running (pid {holder['pid']} on {holder['host']})" if holder else "interrupted"
        click.echo(f"{path}: incomplete, {state}: {written}/{total} chunks written "
                   f"({written / max(total, 1):.0%}); continue with --resume")
    for key in ("input", "model", "tile", "overlap_px", "blend", "chunk", "tiles_run",
                "tiles_minimum", "tiles_skipped", "seconds", "device", "backend"):
        if attrs.get(key) is not None:
            click.echo(f"  {key:<14} {attrs[key]}")
