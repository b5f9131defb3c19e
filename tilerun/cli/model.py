"""``tilerun model info|inspect|pack|export|quantize``: inspect, build and convert models.

torch and the model code are imported when a command runs, not to print ``--help``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tilerun.cli.errors import exits_cleanly
from tilerun.cli.options import allow_pickle_option, json_option, overwrite_option
from tilerun.cli.predict import DEMO
from tilerun.errors import OutputExistsError

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
    click.echo(f"{title}: {spec.architecture} ({_parameters(module)}), "
               f"takes {describe_input(spec)}")
    for key, value in asdict(spec).items():
        if value is not None and key not in ("architecture",):
            click.echo(f"  {key:<22} {value}")


def _parameters(module: Any) -> str:
    """``0.12 M parameters``: a torch module's, or an ONNX graph's weights (its initializers:
    an ONNX model runs through a session and has no torch parameters)."""
    from tilerun.models.onnx_runtime import OnnxModule

    if isinstance(module, OnnxModule):
        import onnx

        graph = onnx.load(module.path, load_external_data=False).graph
        count = sum(math.prod(t.dims) for t in graph.initializer)
        return f"{count / 1e6:.2f} M parameters in ONNX initializers"
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f} M parameters"


def _model_file(path: Path) -> Path:
    """``demo`` (when no such file is here) is the bundled demo package."""
    if str(path) == DEMO and not path.exists():
        from tilerun.models.default import BUNDLED

        return BUNDLED
    return path


def _model_info(path: str | None, allow_pickle: bool) -> tuple[Any, ModelSpec, str]:
    """The module, spec and the title of ``model info``'s report."""
    if path is not None and path != DEMO:
        from tilerun.models import as_model

        handle = as_model(path, allow_pickle=allow_pickle)
        return handle.module, handle.spec, path
    from tilerun.models.default import BUNDLED, default_model

    handle, trained = default_model()
    if not trained:
        return handle.module, handle.spec, (f"{DEMO}: {BUNDLED} is missing (a broken install); "
                                            "an untrained stand-in U-Net")
    return handle.module, handle.spec, f"{DEMO} (the bundled demo model, {BUNDLED})"


@model_group.command("pack")
@click.argument("state", metavar="MODEL", type=click.Path(path_type=Path))
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Spec file, JSON or TOML, whose keys are ModelSpec's fields (architecture, arguments, "
         "bands, band_names, mean/std, class_names …); `tilerun model inspect MODEL` prints "
         "a template.",
)
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="The model to write: ONNX stays ONNX (.onnx, spec in its metadata), TorchScript and "
         "torch.export stay what they are (spec as an extra file), a state dict becomes a "
         ".safetensors package.",
)
@allow_pickle_option
@overwrite_option("the package")
@exits_cleanly
def pack_command(
    state: Path, spec_path: Path, out: Path, allow_pickle: bool, overwrite: bool
) -> None:
    """Attach a spec to MODEL: an ONNX file, a TorchScript archive, a torch.export program
    or a state dict (safetensors, or a pickle with --allow-pickle) of a named architecture."""
    from tilerun.models.packing import pack_model
    from tilerun.models.specfile import read_spec_file

    if out.exists() and not overwrite:
        raise OutputExistsError(out, "already exists; pass --overwrite to replace it")
    spec = read_spec_file(spec_path)
    kind = pack_model(state, spec, out, allow_pickle=allow_pickle)
    click.echo(f"wrote {out} ({kind}, {spec.architecture}, "
               f"{out.stat().st_size / 1e6:.2f} MB)")


@model_group.command("inspect")
@click.argument("path", metavar="MODEL")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--allow-pickle", is_flag=True, help="Allow a pickled state dict (weights only).")
@exits_cleanly
def inspect_command(path: str, as_json: bool, allow_pickle: bool) -> None:
    """Print what MODEL's file itself tells (inputs, fixed or dynamic size, channels, outputs,
    opset, downsampling factor) and a spec template to fill in for --spec."""
    from tilerun.models.inspection import inspect_model
    from tilerun.models.specfile import template_json

    found = inspect_model(path, allow_pickle=allow_pickle)
    if as_json:
        click.echo(json.dumps(found.to_dict(), indent=2))
        return
    click.echo(f"{found.path}: {found.format}")
    for label, value in found.facts.items():
        click.echo(f"  {label:<13} {value}")
    if found.spec is not None:
        click.echo("  spec         attached (see `tilerun model info`)")
        return
    click.echo("  spec         none: save this template as spec.json, fill in the nulls "
               "(delete what does not apply) and pass it with --spec")
    click.echo(template_json(found.template))


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
    export_model(_model_file(path), out, format=fmt, tile=tile, allow_pickle=allow_pickle,
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

    report = quantize_model(_model_file(path), out, scene, method=method,
                            calibration_tiles=calibration_tiles, tile=tile,
                            min_agreement=min_agreement, force=force, overwrite=overwrite,
                            allow_pickle=allow_pickle)
    for name, iou in report.iou.items():
        click.echo(f"  IoU {name:<15} " + ("absent" if isnan(iou) else f"{iou:.4f}"))
    click.echo(f"wrote {out} ({report.method} INT8): label agreement {report.agreement:.4f} "
               f"over {report.pixels} px; {report.fp32_bytes / 1e6:.2f} MB fp32 → "
               f"{report.int8_bytes / 1e6:.2f} MB INT8 ({report.size_ratio:.0%}) "
               f"in {report.seconds:.1f} s")
