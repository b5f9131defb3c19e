"""``tilerun info``: is an output complete, and if not, how far did its run get?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np
import zarr

from tilerun.cli.errors import exits_cleanly
from tilerun.errors import InputError
from tilerun.sinks.lock import RunLock
from tilerun.sinks.zarr import DONE


@click.command("info")
@click.argument("store", type=click.Path(path_type=Path))
@exits_cleanly
def info_command(store: Path) -> None:
    """Say whether STORE (or its unfinished STORE.partial) is complete, and how far it got."""
    path = store if store.exists() else store.with_name(store.name + ".partial")
    if not (path / "zarr.json").is_file():
        raise InputError(store, "no tilerun output here (nor an unfinished .partial)")
    group = zarr.open_group(path, mode="r")
    attrs: dict[str, Any] = dict(group.attrs.get("tilerun") or {})  # type: ignore[arg-type]
    has_records = (path / DONE / "zarr.json").is_file()
    done = np.asarray(zarr.open_array(path / DONE, mode="r")[:]) if has_records else None
    total = done.size if done is not None else 0
    written = int(done.sum()) if done is not None else 0
    if attrs.get("complete"):
        click.echo(f"{store}: complete ({total} chunks)")
    else:
        holder = RunLock(path).holder()
        state = f"running (pid {holder['pid']} on {holder['host']})" if holder else "interrupted"
        click.echo(f"{path}: incomplete, {state}: {written}/{total} chunks written "
                   f"({written / max(total, 1):.0%}); continue with --resume")
    for key in ("input", "model", "tile", "overlap_px", "blend", "chunk", "tiles_run",
                "tiles_minimum", "tiles_skipped", "seconds", "device"):
        if attrs.get(key) is not None:
            click.echo(f"  {key:<14} {attrs[key]}")
