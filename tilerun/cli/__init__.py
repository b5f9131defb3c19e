"""The ``tilerun`` command: a thin click shell over the library, one module per command."""

from __future__ import annotations

import sys
from typing import Any

import click

from tilerun import __version__
from tilerun.cli.info import info_command
from tilerun.cli.model import model_group
from tilerun.cli.predict import predict_command
from tilerun.cli.quicklook import quicklook_command
from tilerun.cli.sample import sample_command


class _Group(click.Group):
    """Report click's own usage errors as one ``error:`` line with exit code 2, like ours."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
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

