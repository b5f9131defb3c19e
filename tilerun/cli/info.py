"""``tilerun info``: is an output complete, and if not, how far did its run get?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tilerun.cli.errors import exits_cleanly
from tilerun.cli.jsonout import json_line
from tilerun.cli.options import json_option, store_argument

#: the record's keys the text report lists (``--json`` gives the whole record)
SHOWN = ("input", "model", "tile", "overlap_px", "blend", "chunk", "tiles_run", "tiles_minimum",
         "tiles_skipped", "seconds", "device", "backend")


@click.command("info")
@store_argument
@json_option("the state and the run's whole record")
@click.option("--verify", is_flag=True,
              help="Read every written chunk and check it against its checksum; name the bad "
                   "ones (exit 2).")
@exits_cleanly
def info_command(store: str, as_json: bool, verify: bool) -> None:
    """Say whether STORE (or its unfinished STORE.partial) is complete, and how far it got."""
    from tilerun.sinks.layout.store import output_store

    output = output_store(store)
    path = output.located()
    attrs = output.record(path)
    done = output.chunks_done(path)
    verified = _verify(store, path, done) if verify else None
    total = done.size if done is not None else 0
    written = int(done.sum()) if done is not None else 0
    complete = bool(attrs.get("complete")) and not output.is_staging(path)
    holder = None if complete else output.holder()
    state = "complete" if complete else "running" if holder else "interrupted"
    where = path if isinstance(path, Path) else store  # object storage: the URL
    if as_json:
        state_info: dict[str, Any] = {
            "store": str(store), "path": str(where), "state": state, "complete": complete,
            "chunks": total, "chunks_written": written, "holder": holder, "record": attrs,
            "verified": verified,
        }  # fmt: skip
        click.echo(json_line(state_info))
        return
    if complete:
        click.echo(f"{store}: complete ({total} chunks)")
    if verified is not None:
        click.echo(f"  verified       {verified} chunk(s) match their checksums")
    else:
        running = f"running (pid {holder['pid']} on {holder['host']})" if holder else state
        click.echo(f"{where}: incomplete, {running}: {written}/{total} chunks written "
                   f"({written / max(total, 1):.0%}); continue with --resume")
    for key in SHOWN:
        if attrs.get(key) is not None:
            click.echo(f"  {key:<14} {attrs[key]}")


def _verify(store: str, target: Any, done: Any) -> int:
    """Check every written chunk; one error line naming the bad ones (exit 2)."""
    from tilerun.errors import InputError
    from tilerun.sinks.integrity import describe, verify_store

    try:
        checked, bad = verify_store(target, done)
    except ValueError as err:
        raise InputError(store, str(err)) from err
    if bad:
        chunks = len({b.index for b in bad})
        raise InputError(store, f"{chunks} of {checked} chunk(s) fail verification: "
                         f"{describe(bad)}; recompute with `tilerun predict … --overwrite`")
    return checked
