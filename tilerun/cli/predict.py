"""``tilerun predict``: one raster in, one georeferenced Zarr of blended logits out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tilerun.blending import BLEND_MODES
from tilerun.cli.errors import exits_cleanly, one_line_warnings
from tilerun.engine import PredictOptions, RunSummary
from tilerun.engine.options import BACKENDS, PRECISIONS, PYRAMIDS, TTA_MODES
from tilerun.engine.partial import ChunkResult
from tilerun.engine.run import run
from tilerun.errors import OptionError
from tilerun.models.default import default_model
from tilerun.sinks import check_output_path, completed_output
from tilerun.sources import open_source
from tilerun.sources.remote import remote_url

#: Every default comes from :class:`PredictOptions`, where options are defined once.
DEFAULT = PredictOptions()


def _int_list(name: str, text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise OptionError(name, f"expected comma-separated integers, got {text!r}") from None


def _overlap(text: str) -> float | int:
    """``0.25`` is a fraction of the tile; ``64`` is pixels. ``float`` also parses ``nan``,
    ``inf`` and negatives, which mean nothing here (and ``int(nan)`` would raise)."""
    try:
        value = float(text)
    except ValueError:
        raise OptionError("--overlap", f"expected a fraction or pixels, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise OptionError("--overlap", f"must be a fraction in [0, 1) or pixels ≥ 0, got {text!r}")
    return value if value < 1 or "." in text else int(value)


@click.command("predict")
@click.argument("input", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output-path",
    "out",
    type=click.Path(path_type=Path),
    help="Output Zarr store [default: INPUT with suffix .zarr; for a URL, its file name "
         "with suffix .zarr in the current folder].",
)
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    help="Model package (.safetensors) [default: the bundled demo model].",
)
@click.option("--tile", type=int,
              help="Model input tile edge in pixels [default: the model's, else 256].")
@click.option("--overlap",
              help="Overlap between tiles: a fraction of the tile (0.25) or pixels (64) "
                   "[default: the model's, else 0.25].")
@click.option("--blend", type=click.Choice(BLEND_MODES), default=DEFAULT.blend, show_default=True)
@click.option("--sigma", default=DEFAULT.sigma, show_default=True,
              help="Gaussian sigma as a fraction of the tile.")
@click.option("--batch-size", default=DEFAULT.batch_size, show_default=True)
@click.option("--chunk", default=DEFAULT.chunk, show_default=True,
              help="Output chunk edge in pixels.")
@click.option("--bands", help="1-based bands to use, in order, e.g. 3,2,1.")
@click.option("--device", default=DEFAULT.device, show_default=True,
              help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--output",
    "variables",
    default=",".join(DEFAULT.output),
    show_default=True,
    help="Variables to write, comma-separated, in any combination: logits, labels, "
         "probabilities (uint8 class probabilities: softmax, or sigmoid for sigmoid and "
         "one-class models; stored as round(p*254), 255 = nodata; xarray decodes them to "
         "floats in [0, 1]), e.g. labels,probabilities.",
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16"]),
    default=DEFAULT.dtype,
    show_default=True,
    help="Stored logits type (blending is always float32).",
)
@click.option("--precision", type=click.Choice(PRECISIONS), default=DEFAULT.precision,
              show_default=True, help="Model precision; blending stays float32.")
@click.option("--backend", type=click.Choice(BACKENDS), default=DEFAULT.backend,
              show_default=True,
              help="What runs the model: auto picks the fastest installed one whose logits "
                   "match eager torch on a probe batch; conversions are cached.")
@click.option("--tta", type=click.Choice(TTA_MODES), default=DEFAULT.tta,
              show_default=True, help="Test-time augmentation: average flips or all 8 D4 views.")
@click.option("--pixel-size-tolerance", type=float, default=DEFAULT.pixel_size_tolerance,
              show_default=True,
              help="Allowed relative difference from the model's pixel size (inf: no check).")
@click.option("--allow-pickle", is_flag=True,
              help="Allow a pickled checkpoint (read with torch's weights-only loader).")
@click.option("--mpp", type=float,
              help="Slides: resample to exactly this many µm per pixel [default: the model's].")
@click.option("--level", type=int, help="Slides: use this pyramid level as is.")
@click.option("--slide-mpp", type=float,
              help="Slides: µm per pixel at level 0, for slides without (or with wrong) metadata.")
@click.option("--tissue", default=DEFAULT.tissue, show_default=True,
              help="Slides: skip tiles without tissue: auto (detect), none, or a mask image/Zarr.")
@click.option("--pyramid", type=click.Choice(PYRAMIDS), default=DEFAULT.pyramid,
              show_default=True,
              help="OME-NGFF pyramids to add: auto (labels, for slides), none, labels, "
                   "or labels,probabilities.")
@click.option("--threads", type=int,
              help="Threads [default: CPU cores + 2]; per worker on a cluster.")
@click.option("--workers", type=int,
              help="Run on a local Dask cluster of this many worker processes.")
@click.option("--scheduler", default=DEFAULT.scheduler, show_default=True,
              help="threads, sync, processes, or a Dask scheduler address (tcp://host:8786).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output store.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run of the same job: only missing chunks are written.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@exits_cleanly
def predict_command(
    input: Path,
    out: Path | None,
    model: Path | None,
    overlap: str,
    bands: str | None,
    variables: str,
    quiet: bool,
    **options: Any,
) -> None:
    """Predict INPUT (a GeoTIFF or any raster GDAL reads) into a chunked Zarr store."""
    out = out if out is not None else _default_output(input)
    opts = PredictOptions.from_kwargs(
        overlap=_overlap(overlap) if overlap is not None else None,
        bands=_int_list("--bands", bands),
        output=tuple(v.strip() for v in variables.split(",") if v.strip()),
        **options,
    )
    console = Console(stderr=True, quiet=quiet)
    _show_library_notes(console)
    if not (opts.resume and completed_output(out) is not None):
        check_output_path(out, opts.overwrite)
    try:
        with one_line_warnings():
            handle, trained = _model(model, input, opts)
            summary = _run_with_progress(input, handle, out, opts, console)
    except KeyboardInterrupt:
        click.echo(f"aborted: {out}.partial keeps the chunks written so far; run the same "
                   "command with --resume to continue", err=True)
        raise SystemExit(130) from None
    _print_summary(summary, console)
    if not trained:
        console.print(
            "[yellow]note:[/] no --model given and no trained demo model is bundled: "
            "an untrained U-Net was used, so the outputs are not meaningful"
        )


def _default_output(input: Path) -> Path:
    """INPUT with suffix ``.zarr``; for a URL, its file name in the current folder."""
    if remote_url(input) is not None:
        return Path(input.name).with_suffix(".zarr")
    return input.with_suffix(".zarr")


def _model(model: Path | None, input: Path, opts: PredictOptions) -> tuple[Any, bool]:
    """The model given, else the bundled demo model for the input's band count; and whether
    it is trained."""
    if model is not None:
        return model, True
    count = len(opts.bands) if opts.bands else open_source(input).shape[0]
    return default_model(count)


def _show_library_notes(console: Console) -> None:
    """Print the library's INFO notes (e.g. the Dask dashboard address) on the console."""
    logger = logging.getLogger("tilerun")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=console, show_time=False, show_path=False))


def _run_with_progress(
    source: Any, model: Any, out: Path, opts: PredictOptions, console: Console
) -> RunSummary:
    columns = (
        TextColumn("predict"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
    )
    if not console.is_terminal:  # no bar (and none of its blank lines) in logs and pipes
        return run(source, model, out, opts)
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("chunks", total=None)

        def started(total: int) -> None:
            bar.update(task, total=total)

        def done(result: ChunkResult) -> None:
            bar.advance(task)

        return run(source, model, out, opts, on_chunk=done, on_start=started)


def _print_summary(s: RunSummary, console: Console) -> None:
    if s.already_complete:
        console.print(f"[green]done[/] {s.output} is already complete "
                      f"({s.chunks} chunks); nothing to do")
        return
    skipped = (f", {s.tiles_skipped} skipped without tissue ({s.skipped_fraction:.0%})"
               if s.tiles_skipped else "")
    console.print(
        f"[green]done[/] {s.tiles_run} tiles ({s.recompute_ratio:.2f}× the minimum{skipped}) in "
        f"{s.chunks} chunks on {s.device} ({s.backend}), {s.seconds:.1f} s, "
        f"{s.pixels_per_second / 1e6:.2f} Mpx/s → {s.output}"
    )
