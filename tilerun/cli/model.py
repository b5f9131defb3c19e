"""``tilerun model info|pack|export|quantize``: inspect, build and convert model packages.

torch and the model code are imported when a command runs, not to print ``--help``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tilerun.cli.errors import exits_cleanly
from tilerun.cli.options import allow_pickle_option, json_option, overwrite_option
from tilerun.cli.predict import DEMO
from tilerun.errors import ModelError, OutputExistsError

if TYPE_CHECKING:
    from tilerun.models import ModelSpec


@click.group("model")
def model_group() -> None:
    """Inspect, build and convert model packages."""


@model_group.command("info")
@click.argument("path", required=False)
@json_option("the spec")
@allow_pickle_option
@exits_cleanly
def info_command(path: str | None, as_json: bool, allow_pickle: bool) -> None:
    """Print a model's spec: bands, normalisation, classes, pixel size, tiles …

    PATH is a model file; without it (or with 'demo'), the bundled demo model, which
    `tilerun predict` uses when no --model is given."""
    from tilerun.engine.checks import describe_input

    module, spec, title = _model_info(path, allow_pickle)
    if as_json:
        click.echo(json.dumps(asdict(spec), indent=2, sort_keys=True))
        return
    params = sum(p.numel() for p in module.parameters())
    click.echo(f"{title}: {spec.architecture} ({params / 1e6:.2f} M parameters), "
               f"takes {describe_input(spec)}")
    for key, value in asdict(spec).items():
        if value is not None and key not in ("architecture",):
            click.echo(f"  {key:<15} {value}")


def _model_info(path: str | None, allow_pickle: bool) -> tuple[Any, ModelSpec, str]:
    """The module, spec and the title of ``model info``'s report."""
    if path is not None and path != DEMO:
        from tilerun.models import load_model

        module, spec = load_model(path, allow_pickle=allow_pickle)
        return module, spec, path
    from tilerun.models.default import BUNDLED, default_model

    handle, trained = default_model()
    if not trained:
        return handle.module, handle.spec, (f"{DEMO}: {BUNDLED} is missing (a broken install); "
                                            "an untrained stand-in U-Net")
    return handle.module, handle.spec, f"{DEMO} (the bundled demo model, {BUNDLED})"


@model_group.command("pack")
@click.argument("state", type=click.Path(path_type=Path))
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(path_type=Path),
    required=True,
    help="JSON spec (architecture, arguments, bands, mean/std, classes …).",
)
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="The package to write (.safetensors).",
)
@allow_pickle_option
@overwrite_option("the package")
@exits_cleanly
def pack_command(
    state: Path, spec_path: Path, out: Path, allow_pickle: bool, overwrite: bool
) -> None:
    """Build a package from a state dict (safetensors, or a pickle with --allow-pickle)."""
    from tilerun.models import ModelSpec, build_from_state, read_state_dict, save_package

    if out.exists() and not overwrite:
        raise OutputExistsError(out, "already exists; pass --overwrite to replace it")
    try:
        spec = ModelSpec.from_json(spec_path.read_text(), str(spec_path))
    except OSError as err:
        raise ModelError(spec_path, f"cannot read the spec ({err.strerror})") from err
    module = build_from_state(read_state_dict(state, allow_pickle=allow_pickle), spec, state)
    fields = {
        k: v
        for k, v in asdict(spec).items()
        if k not in ("architecture", "arguments", "schema_version")
    }
    save_package(module, out, **fields)
    click.echo(f"wrote {out} ({spec.architecture}, {out.stat().st_size / 1e6:.2f} MB)")


@model_group.command("export")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx"]), default="torchscript",
              show_default=True)
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True)
@click.option("--tile", type=int, help="Example tile edge for tracing [default: the spec's].")
@click.option("--embed-normalisation", is_flag=True,
              help="Put the spec's input normalisation in the graph (it then takes raw pixel "
                   "values); the spec records it, so tilerun does not normalise twice.")
@allow_pickle_option
@overwrite_option("the exported file")
@exits_cleanly
def export_command(path: Path, fmt: str, out: Path, tile: int | None, embed_normalisation: bool,
                   allow_pickle: bool, overwrite: bool) -> None:
    """Export a model to TorchScript or ONNX (dynamic batch axis), spec included."""
    from tilerun.models.export import export_model

    if out.exists() and not overwrite:
        raise OutputExistsError(out, "already exists; pass --overwrite to replace it")
    export_model(path, out, format=fmt, tile=tile, allow_pickle=allow_pickle,
                 embed_normalisation=embed_normalisation)
    click.echo(f"wrote {out} ({fmt}, checked against the source model to 1e-4)")


@model_group.command("quantize")
@click.argument("path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", metavar="ONNX", type=click.Path(path_type=Path),
              required=True, help="The INT8 ONNX model to write.")
@click.option("--calibrate", "scene", metavar="SCENE", type=click.Path(path_type=Path),
              required=True,
              help="Scene to calibrate on and to compare INT8 with fp32 labels on.")
@click.option("--method", type=click.Choice(["static", "dynamic"]), default="static",
              show_default=True,
              help="static: calibrated activation ranges (QDQ); dynamic: INT8 weights only.")
@click.option("--calibration-tiles", type=int, default=32, show_default=True,
              help="Tiles (spread over the scene) to calibrate activation ranges on.")
@click.option("--tile", type=int, help="Tile edge [default: the spec's, else 256].")
@click.option("--min-agreement", type=float, default=0.98, show_default=True,
              help="Refuse to write a model whose labels agree less with fp32's.")
@click.option("--force", is_flag=True, help="Write the model even below --min-agreement.")
@overwrite_option("the INT8 model")
@allow_pickle_option
@exits_cleanly
def quantize_command(path: Path, out: Path, scene: Path, method: str, calibration_tiles: int,
                     tile: int | None, min_agreement: float, force: bool, overwrite: bool,
                     allow_pickle: bool) -> None:
    """INT8-quantise a model (ONNX Runtime), checked against fp32 labels on a scene."""
    from math import isnan

    from tilerun.engine.quantize import quantize_model

    report = quantize_model(path, out, scene, method=method, calibration_tiles=calibration_tiles,
                            tile=tile, min_agreement=min_agreement, force=force,
                            overwrite=overwrite, allow_pickle=allow_pickle)
    for name, iou in report.iou.items():
        click.echo(f"  IoU {name:<15} " + ("absent" if isnan(iou) else f"{iou:.4f}"))
    click.echo(f"wrote {out} ({report.method} INT8): label agreement {report.agreement:.4f} "
               f"over {report.pixels} px; {report.fp32_bytes / 1e6:.2f} MB fp32 → "
               f"{report.int8_bytes / 1e6:.2f} MB INT8 ({report.size_ratio:.0%}) "
               f"in {report.seconds:.1f} s")
