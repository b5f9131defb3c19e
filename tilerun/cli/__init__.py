"""The ``tilerun`` command: a thin click shell over the library, one module per command.

Command modules import only click and light definitions at the top, and the library (torch,
Dask, xarray, Zarr, the readers) inside their functions, so ``--help`` answers at once
(``tests/cli/test_cli_guidance.py`` checks that no heavy module is imported to print it).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from tilerun._version import __version__
from tilerun.cli.compare import compare_command
from tilerun.cli.errors import one_line_warnings
from tilerun.cli.export import export_command
from tilerun.cli.info import info_command
from tilerun.cli.model import model_group
from tilerun.cli.predict import predict_command
from tilerun.cli.quicklook import quicklook_command
from tilerun.cli.report import report_command
from tilerun.cli.sample import sample_command
from tilerun.phases import command_started


class _Group(click.Group):
    """Report click's own usage errors as one ``error:`` line with exit code 2, like ours, and
    show every command's warnings as one ``warning:`` line."""

    def invoke(self, ctx: click.Context) -> Any:
        with one_line_warnings():
            return super().invoke(ctx)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        command_started(process=kwargs.get("args", args[0] if args else None) is None)
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.ClickException as err:
            click.echo(f"error: {err.format_message()}", err=True)
            sys.exit(2 if isinstance(err, click.UsageError) else err.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tilerun")
def main() -> None:
    """Run segmentation models over images too large for memory."""


main.add_command(predict_command)
main.add_command(quicklook_command)
main.add_command(model_group)
main.add_command(info_command)
main.add_command(sample_command)
main.add_command(export_command)
main.add_command(report_command)
main.add_command(compare_command)

