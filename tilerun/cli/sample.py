"""``tilerun sample``: write a synthetic georeferenced scene to try tilerun on."""

from __future__ import annotations

from pathlib import Path

import click

from tilerun.cli.errors import exits_cleanly
from tilerun.cli.options import overwrite_option
from tilerun.errors import OutputExistsError


@click.command("sample")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--size", default=1024, show_default=True, help="Edge length in pixels.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same scene).")
@click.option("--slide", is_flag=True,
              help="Write an H&E-like pyramidal slide (0.5 µm/px) instead of a GeoTIFF scene.")
@click.option("--tissue-fraction", default=0.3, show_default=True,
              help="With --slide: the share of the area that is tissue.")
@overwrite_option("OUTPUT")
@exits_cleanly
def sample_command(output: Path, size: int, seed: int, slide: bool, tissue_fraction: float,
                   overwrite: bool) -> None:
    """Write a synthetic georeferenced land-cover scene (water, forest, field, built-up),
    or with --slide a synthetic whole-slide image."""
    from tilerun.sample import CLASSES, write_scene, write_slide

    if output.exists() and not overwrite:
        raise OutputExistsError(output, "already exists; pass --overwrite to replace it")
    if slide:
        write_slide(output, size, tissue_fraction, seed)
        click.echo(f"wrote {output} ({size}×{size} pyramid, 0.5 µm/px, "
                   f"{tissue_fraction:.0%} tissue)")
        return
    write_scene(output, size, size, seed)
    click.echo(f"wrote {output} ({size}×{size}, 3 bands uint8, classes: {', '.join(CLASSES)})")
