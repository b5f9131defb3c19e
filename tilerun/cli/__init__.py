"""The ``tilerun`` command: a thin click shell over the library, one module per command."""

from __future__ import annotations

import click

from tilerun import __version__
from tilerun.cli.predict import predict_command
from tilerun.cli.sample import sample_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tilerun")
def main() -> None:
    """Run segmentation models over images too large for memory."""


main.add_command(predict_command)
main.add_command(sample_command)
