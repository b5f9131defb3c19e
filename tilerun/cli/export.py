"""``tilerun export``: a finished output as a COG, vector polygons or QuPath GeoJSON."""

from __future__ import annotations

from pathlib import Path

import click

from tilerun.cli.errors import exits_cleanly
from tilerun.cli.options import overwrite_option, store_argument


@click.command("export")
@store_argument
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--variable", type=click.Choice(["labels", "probabilities", "logits"]),
              default="labels", show_default=True,
              help="The variable a .tif gets (vector formats polygonise labels).")
@click.option("--blocksize", default=512, show_default=True,
              help="Tile edge of the COG and its overviews (a multiple of 16).")
@click.option("--object-type", type=click.Choice(["annotation", "detection"]),
              default="annotation", show_default=True,
              help="QuPath object type of the features (slide outputs to .geojson).")
@click.option("--origin", type=click.Choice(["slide", "bounds"]), default="slide",
              show_default=True,
              help="QuPath coordinates from the slide's level-0 origin, or from its "
                   "openslide.bounds offset (QuPath's OpenSlide server crops to bounds).")
@overwrite_option("FILE")
@exits_cleanly
def export_command(store: str, file: Path, variable: str, blocksize: int, object_type: str,
                   origin: str, overwrite: bool) -> None:
    """Export the finished output STORE to FILE, by FILE's extension: .tif/.tiff a
    Cloud-Optimized GeoTIFF; .gpkg, .parquet/.geoparquet, .fgb, .geojson/.json label polygons
    (QuPath GeoJSON in level-0 pixels for a slide)."""
    from tilerun.exports import export

    summary = export(store, file, variable=variable, overwrite=overwrite,
                     blocksize=blocksize, object_type=object_type, origin=origin)
    click.echo(f"wrote {summary.path} ({summary.description})")
