"""``tilerun predict``: one raster in, one georeferenced Zarr of blended logits out.

The module imports only what ``--help`` needs (click and the options' definitions); the
engine, torch, Dask and the readers are imported when a run starts.
"""

from __future__ import annotations

import logging
import warnings
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tilerun.blending.modes import BLEND_MODES
from tilerun.cli.errors import exits_cleanly
from tilerun.cli.predict_output import echo_already_complete, echo_plan, echo_summary
from tilerun.cli.progress import progress_bar
from tilerun.cli.renamed import chosen_variables
from tilerun.engine.options import (
    BACKENDS,
    PRECISIONS,
    PYRAMIDS,
    RESAMPLINGS,
    TTA_MODES,
    PredictOptions,
)
from tilerun.errors import OptionError

if TYPE_CHECKING:
    from rich.console import Console

    from tilerun.engine.execute import RunSummary
    from tilerun.models import ModelHandle

#: ``--model demo`` (and no ``--model``) is the bundled demo model
#: (:data:`tilerun.models.default.DEMO`, spelled here so that ``--help`` needs no torch).
DEMO = "demo"

#: Every default comes from :class:`PredictOptions`, where options are defined once.
DEFAULT = PredictOptions()


def _band_list(text: str | None) -> tuple[int | str, ...] | None:
    """``--bands``: numbers and/or names, comma-separated."""
    if text is None:
        return None
    from tilerun.sources.bandnames import parse_band_list

    return parse_band_list(text)


def _overlap(text: str) -> float | int:
    """``0.25`` (or ``1/4``) is a fraction of the tile; ``64`` is pixels. Fraction parses
    neither ``nan`` nor ``inf``; negatives mean nothing here."""
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        if not _is_float(text):
            raise OptionError("--overlap", f"expected a fraction (0.25 or 1/4) or pixels (64), "
                              f"got {text!r}") from None
        value = Fraction(-1)  # nan, inf: numbers, but no overlap (refused just below)
    if value < 0:
        raise OptionError("--overlap", f"must be a fraction in [0, 1) or pixels ≥ 0, got {text!r}")
    if value < 1 or "." in text or "/" in text:
        return float(value)
    return int(value)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output-path",
    "out",
    help="Output Zarr store: a path, or an object-store URL (s3://, gs://, az://) written in "
         "place [default: INPUT with suffix .zarr; for a URL, its file name with suffix .zarr "
         "in the current folder]. With several inputs (or a folder, glob, @list or STAC "
         "JSON): the output folder, one OUTDIR/<stem>.zarr per input.",
)
@click.option(
    "--model",
    metavar="PATH|demo",
    help="Model file: a package (.safetensors), TorchScript, torch.export (.pt2) or ONNX; "
         f"'{DEMO}', the bundled demo model (3-band uint8 RGB at 10 m) [default: {DEMO}]; or "
         "csmask:6band-l2a (…-l1c, 4band-…), ukis-csmask's cloud models (tilerun[csmask]).",
)
@click.option("--spec", "spec_file", type=click.Path(path_type=Path),
              help="Spec file (JSON or TOML, ModelSpec's fields: bands, mean/std, class_names …) "
                   "for a model that has none, or to replace its own; see `tilerun model "
                   "inspect`.")
@click.option("--tile", type=int,
              help="Model input tile edge in pixels [default: the model's, else 256].")
@click.option("--overlap",
              help="Overlap between tiles: a fraction of the tile (0.25 or 1/4) or pixels (64) "
                   "[default: the model's, else 0.25].")
@click.option("--blend", type=click.Choice(BLEND_MODES), default=DEFAULT.blend, show_default=True)
@click.option("--sigma", default=DEFAULT.sigma, show_default=True,
              help="Gaussian sigma as a fraction of the tile.")
@click.option("--batch-size", default=DEFAULT.batch_size, show_default=True)
@click.option("--chunk", default=DEFAULT.chunk, show_default=True,
              help="Output chunk edge in pixels.")
@click.option("--bands",
              help="Bands to use, in order: 1-based numbers (3,2,1) or names (red,green,blue; "
                   "B04 = red for Sentinel-2), matched against band descriptions, band tags "
                   "and STAC eo:bands [default: the bands the model's spec names, when the "
                   "input names its bands; else all].")
@click.option("--resampling", type=click.Choice(RESAMPLINGS), default=DEFAULT.resampling,
              show_default=True,
              help="STAC items and per-band files: how bands coarser than the finest are "
                   "resampled onto its grid.")
@click.option("--stack", is_flag=True,
              help="INPUTS are the per-band files of one scene (e.g. Sentinel-2's B02.tif … "
                   "B11.tif): stacked on the finest grid into the one store -o names.")
@click.option("--device", default=DEFAULT.device, show_default=True,
              help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--write",
    "variables",
    help="Variables to write, comma-separated, in any combination: logits, labels, "
         "probabilities (uint8 class probabilities: softmax, or sigmoid for sigmoid and "
         "one-class models; stored as round(p*254), 255 = nodata; xarray decodes them to "
         f"floats in [0, 1]), e.g. labels,probabilities [default: {','.join(DEFAULT.output)}].",
)
@click.option("--output", "old_variables", hidden=True, help="Old name of --write.")
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
                   "match eager torch on a probe batch (an ONNX model runs on onnxruntime, its "
                   "own runtime); conversions are cached. A backend named runs, or the run "
                   "stops saying why.")
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
@click.option("--zarr-format", type=click.Choice(["2", "3"]), default=str(DEFAULT.zarr_format),
              show_default=True, callback=lambda _c, _p, v: int(v),
              help="Zarr v3, or v2 for GDAL/QGIS (the GDAL in rasterio wheels reads v2 only).")
@click.option("--threads", type=int,
              help="Threads [default: CPU cores + 2]; per worker on a cluster.")
@click.option("--workers", type=int,
              help="Run on a local Dask cluster of this many worker processes.")
@click.option("--scheduler", default=DEFAULT.scheduler, show_default=True,
              help="threads, sync, processes, or a Dask scheduler address (tcp://host:8786).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output store.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run of the same job: only missing chunks are written.")
@click.option("--quiet", is_flag=True,
              help="No progress bar or notes; the one-line summary is still printed.")
@click.option("--dry-run", is_flag=True,
              help="Check everything and print the plan (tiles, chunks, memory, output size, "
                   "backend) without running the model over the image or writing anything.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary (or the --dry-run plan) as one JSON object on stdout.")
@exits_cleanly
def predict_command(
    inputs: tuple[str, ...],
    out: str | None,
    model: str | None,
    spec_file: Path | None,
    overlap: str,
    bands: str | None,
    variables: str | None,
    old_variables: str | None,
    quiet: bool,
    dry_run: bool,
    as_json: bool,
    stack: bool,
    **options: Any,
) -> None:
    """Predict INPUT (a GeoTIFF or any raster GDAL reads, or a STAC Item .json) into a
    chunked Zarr store; several INPUTS, a folder, a quoted glob, @list.txt or a STAC
    ItemCollection: one job into -o OUTDIR; with --stack, INPUTS are one scene's band files."""
    variables = chosen_variables(variables, old_variables, ",".join(DEFAULT.output))
    opts = PredictOptions.from_kwargs(
        overlap=_overlap(overlap) if overlap is not None else None,
        bands=_band_list(bands),
        output=tuple(v.strip() for v in variables.split(",") if v.strip()),
        **options,
    )
    from rich.console import Console

    from tilerun.sources.inputs import is_plain

    # Progress, notes and warnings go to stderr; stdout has the summary (or plan) alone.
    console = Console(stderr=True, quiet=quiet)
    _show_library_notes(console)
    if stack:
        source: Path | list[Path] = [Path(p) for p in inputs]
        if out is None:
            raise OptionError("--stack", "give -o OUT.zarr: a scene's band files have no one "
                              "name to put the output beside")
    elif len(inputs) > 1 or not is_plain(inputs[0]):
        return _run_job(inputs, out, _given_model(model, opts, spec_file), opts, console,
                        quiet, dry_run, as_json)
    else:
        source = Path(inputs[0])
    _run_single(source, _output(out, Path(inputs[0])), (model, spec_file), opts, console,
                dry_run, as_json)


def _run_single(input: Path | list[Path], target: str | Path,
                model_and_spec: tuple[str | None, Path | None], opts: PredictOptions,
                console: Console, dry_run: bool, as_json: bool) -> None:
    """One scene (a raster, slide, URL, STAC Item, or a list of one scene's band files) into
    the store ``target``, with a progress bar; or its plan (``dry_run``)."""
    from tilerun.sinks import completed_output, sink_for

    model, spec_file = model_and_spec
    finished = completed_output(target) if opts.resume else None
    if finished is None:
        if not dry_run:  # a dry run plans an existing output too, and says a run would stop
            sink_for(target, opts.overwrite).check()
    elif dry_run:
        echo_already_complete(target, as_json)
        return
    try:
        handle, trained = _model(model, input, opts, spec_file)
        if dry_run:
            from tilerun.engine.dry_run import plan_run

            echo_plan(plan_run(input, handle, target, opts), as_json)
            return
        summary, start_up = _run_with_progress(input, handle, target, opts, console)
    except KeyboardInterrupt:
        if dry_run:
            click.echo("aborted (dry run: nothing was written)", err=True)
            raise SystemExit(130) from None
        kept = _unfinished(target, opts.overwrite)
        click.echo(f"aborted: {kept} keeps the chunks written so far; run the same "
                   "command with --resume to continue", err=True)
        raise SystemExit(130) from None
    echo_summary(summary, as_json, start_up)
    if not trained:
        console.print(
            "[yellow]note:[/] no trained demo model is bundled: an untrained U-Net was used "
            "in its place, so the outputs are not meaningful"
        )


def _unfinished(target: str | Path, overwrite: bool) -> str:
    """Where an interrupted run's chunks are: ``OUT.partial`` for a folder; for an object
    store, the URL itself, or its ``.partial`` sibling where ``--overwrite`` writes the new
    store beside an old one (see :mod:`tilerun.sinks.object_store`)."""
    from tilerun.sinks import object_url

    if not object_url(target):
        return f"{target}.partial"
    from tilerun.extras import store_errors
    from tilerun.sinks.object_store import staging_url
    from tilerun.sinks.objects import ObjectLocation

    staged = staging_url(str(target)) if overwrite else None
    unreachable: tuple[type[BaseException], ...] = (OSError, *store_errors())
    try:
        beside = staged is not None and ObjectLocation(staged).get("zarr.json") is not None
    except unreachable:
        beside = False  # the store is out of reach: name the output itself
    return staged if beside and staged is not None else str(target)


def _run_job(inputs: tuple[str, ...], out: str | None, model: str | Path | ModelHandle | None,
             opts: PredictOptions, console: Console, quiet: bool, dry_run: bool,
             as_json: bool) -> None:
    """Many scenes as one job (:mod:`tilerun.cli.job`); ``model``: the one given (None: the
    demo model)."""
    from tilerun.cli.job import model_for_job, run_job

    if dry_run:
        raise OptionError("--dry-run", "plans one input; run it on one scene of the job")
    handle, trained = (model, True) if model is not None else model_for_job(inputs, opts)
    run_job(inputs, out, handle, opts, console, quiet=quiet, as_json=as_json)
    if not trained:
        console.print("[yellow]note:[/] no trained demo model is bundled: an untrained U-Net "
                      "was used in its place, so the outputs are not meaningful")


def _output(out: str | None, input: Path) -> str | Path:
    """The output: an object-store URL as given, else a path (by default beside INPUT)."""
    from tilerun.sinks import object_url

    if out is None:
        return _default_output(input)
    return out if object_url(out) else Path(out)


def _default_output(input: Path) -> Path:
    """INPUT with suffix ``.zarr``; for a URL, its file name in the current folder."""
    from tilerun.sources.remote import remote_url

    if remote_url(input) is not None:
        return Path(input.name).with_suffix(".zarr")
    return input.with_suffix(".zarr")


def _model(model: str | None, input: Path | list[Path], opts: PredictOptions,
           spec_file: Path | None = None) -> tuple[str | Path | ModelHandle, bool]:
    """The model given (with ``--spec``'s spec), else (or for ``demo``) the bundled demo
    model, checked against the input so that an input it does not suit is an error that says
    to pass ``--model``; and whether the model is trained."""
    given = _given_model(model, opts, spec_file)
    if given is not None:
        return given, True
    from tilerun.engine.checks import check_default_model
    from tilerun.models.default import default_model
    from tilerun.sources import open_source

    # Level 0 of a slide opens without mpp metadata, and is enough to say it is a slide. The
    # run opens and checks the input again and warns then: warnings here would come twice.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = open_source(input, opts.bands, level=0)
        handle, trained = default_model(source.shape[0])
        check_default_model(source, handle, opts.pixel_size_tolerance)
    return handle, trained


def _given_model(model: str | None, opts: PredictOptions,
                 spec_file: Path | None) -> str | Path | ModelHandle | None:
    """The model the user named (a file, or a name such as ``csmask:6band-l2a``), with
    ``--spec``'s spec; None for the demo model (which depends on the input)."""
    if spec_file is not None:
        from tilerun.models import as_model
        from tilerun.models.specfile import read_spec_file

        return as_model(model or DEMO, spec=read_spec_file(spec_file),
                        allow_pickle=opts.allow_pickle, mean=opts.mean, std=opts.std)
    if model is not None and model != DEMO:
        return model if ":" in model and not Path(model).exists() else Path(model)
    return None


def _show_library_notes(console: Console) -> None:
    """Print the library's INFO notes (e.g. the Dask dashboard address) on the console."""
    from rich.logging import RichHandler

    logger = logging.getLogger("tilerun")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=console, show_time=False, show_path=False))


def _run_with_progress(
    source: Any, model: Any, out: str | Path, opts: PredictOptions, console: Console
) -> tuple[RunSummary, float]:
    """The run's summary, and the seconds the command spent before the run (its start-up)."""
    from tilerun.engine.execute import run
    from tilerun.phases import since_command_start

    start_up = since_command_start()
    with progress_bar(console) as (started, done, phased):
        summary = run(source, model, out, opts, on_chunk=done, on_start=started,
                      on_phase=phased)
    return summary, start_up
