"""``tilerun model info|pack|export``: inspect, build and convert model packages."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from tilerun.cli.errors import exits_cleanly
from tilerun.errors import ModelError, OutputExistsError
from tilerun.models import (
    ModelSpec,
    build_from_state,
    load_model,
    read_state_dict,
    save_package,
)


@click.group("model")
def model_group() -> None:
    """Inspect, build and convert model packages."""


@model_group.command("info")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the spec as JSON.")
@click.option("--allow-pickle", is_flag=True, help="Allow a pickled checkpoint (weights only).")
@exits_cleanly
def info_command(path: Path, as_json: bool, allow_pickle: bool) -> None:
    """Print a model's spec: bands, normalisation, classes, pixel size, tiles …"""
    module, spec = load_model(path, allow_pickle=allow_pickle)
    if as_json:
        click.echo(json.dumps(asdict(spec), indent=2, sort_keys=True))
        return
    params = sum(p.numel() for p in module.parameters())
    click.echo(f"{path}: {spec.architecture} ({params / 1e6:.2f} M parameters)")
    for key, value in asdict(spec).items():
        if value is not None and key not in ("architecture",):
            click.echo(f"  {key:<15} {value}")


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
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Read a pickled state dict (.pt/.pth/.ckpt) with torch's weights-only loader.",
)
@click.option("--overwrite", is_flag=True)
@exits_cleanly
def pack_command(
    state: Path, spec_path: Path, out: Path, allow_pickle: bool, overwrite: bool
) -> None:
    """Build a package from a state dict (safetensors, or a pickle with --allow-pickle)."""
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
@click.option("--allow-pickle", is_flag=True, help="Allow a pickled checkpoint (weights only).")
@click.option("--overwrite", is_flag=True)
@exits_cleanly
def export_command(path: Path, fmt: str, out: Path, tile: int | None, allow_pickle: bool,
                   overwrite: bool) -> None:
    """Export a model to TorchScript or ONNX (dynamic batch axis), spec included."""
    from tilerun.models.export import export_model

    if out.exists() and not overwrite:
        raise OutputExistsError(out, "already exists; pass --overwrite to replace it")
    export_model(path, out, format=fmt, tile=tile, allow_pickle=allow_pickle)
    click.echo(f"wrote {out} ({fmt}, checked against the source model to 1e-4)")
