"""``tilerun compare``: two outputs of one scene side by side (IoU, agreement, logits)."""

from __future__ import annotations

import json

import click

from tilerun.cli.errors import exits_cleanly
from tilerun.cli.options import json_option


@click.command("compare")
@click.argument("first")
@click.argument("second")
@json_option("the comparison")
@exits_cleanly
def compare_command(first: str, second: str, as_json: bool) -> None:
    """Compare the labels (and logits, when both have them) of two outputs of the same scene:
    per-class IoU, label agreement, largest logit difference."""
    from tilerun.report.compare import compare_outputs

    result = compare_outputs(first, second)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"{result.pixels:,} pixels valid in both; label agreement "
               f"{100 * result.agreement:.3f} %")
    width = max(len(n) for n in result.class_names)
    for name, iou in zip(result.class_names, result.iou, strict=True):
        click.echo(f"  IoU {name:<{width}}  {'–' if iou is None else f'{iou:.4f}'}")
    if result.mean_iou is not None:
        click.echo(f"  mean IoU {result.mean_iou:.4f}")
    if result.max_logit_difference is not None:
        click.echo(f"max |logit difference| {result.max_logit_difference:.3g}")
    if result.nodata_mismatch:
        click.echo(f"nodata in one output only: {result.nodata_mismatch:,} pixels")
