"""``tilerun model inspect``: what a model file itself tells, and a spec template to fill in.

For an ONNX file that is read from the graph (:mod:`tilerun.models.onnx_graph`): the input's
name, channels and whether its batch and size are fixed, the outputs, the opset, and the
downsampling factor (from tilerun's metadata, else traced). For TorchScript, torch.export and
safetensors files: the format, the parameter count and the attributes tilerun reads
(``downsampling``, ``border``). Either way, whether a spec is attached, and a template with
what the file told filled in, ``null`` for what a person must say (normalisation, band names,
classes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tilerun.models.specfile import spec_template


@dataclass(frozen=True)
class Inspection:
    """What :func:`inspect_model` found: ``facts`` (label → value, in order), the attached
    spec (None: none) and a spec ``template``."""

    path: str
    format: str
    facts: dict[str, Any]
    spec: dict[str, Any] | None
    template: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def inspect_model(model: str | Path, *, allow_pickle: bool = False) -> Inspection:
    """Inspect a model file (or a named model such as ``csmask:6band-l2a``)."""
    from tilerun.models.csmask import csmask_model, is_csmask

    spec_given = None
    if is_csmask(model):
        model, spec_given = csmask_model(str(model))
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        return _inspect_onnx(path, spec_given)
    return _inspect_torch(path, allow_pickle)


def _inspect_onnx(path: Path, spec_given: Any) -> Inspection:
    from tilerun.models.onnx_graph import read_geometry
    from tilerun.models.onnx_runtime import SPEC_KEY
    from tilerun.models.spec import ModelSpec

    geometry = read_geometry(path)
    size = geometry.fixed_size
    facts: dict[str, Any] = {
        "input": f"{geometry.input.name} {_shape(geometry.input.shape)}",
        "channels": geometry.channels,
        "size": f"fixed {size[0]} × {size[1]} px" if size else "dynamic (any multiple of "
                f"{geometry.downsampling} px)",
        "batch": f"fixed {geometry.fixed_batch}" if geometry.fixed_batch else "dynamic",
        "outputs": ", ".join(f"{o.name} {_shape(o.shape)}" for o in geometry.outputs),
        "opset": geometry.opset,
        "downsampling": f"{geometry.downsampling} (from the {geometry.downsampling_from})",
    }
    text = geometry.metadata.get(SPEC_KEY)
    spec = spec_given or (ModelSpec.from_json(text, str(path)) if text else None)
    known: dict[str, Any] = {"bands": geometry.channels, "tile": size[0] if size else None}
    if len(geometry.outputs) > 1:
        known["output"] = geometry.outputs[0].name
    return Inspection(str(path), "onnx", facts, asdict(spec) if spec else None,
                      spec_template(**known))


def _inspect_torch(path: Path, allow_pickle: bool) -> Inspection:
    from tilerun.models.handle import _first_conv_channels
    from tilerun.models.loading import load_model, model_format

    kind = model_format(path)
    if kind in ("safetensors", "pickle") and not _is_package(path):
        return _inspect_state(path, kind, allow_pickle)
    module, spec = load_model(path, allow_pickle=allow_pickle)
    attached = spec.to_json() != type(spec)().to_json()
    params = sum(p.numel() for p in module.parameters())
    channels = spec.bands or _first_conv_channels(module)
    facts: dict[str, Any] = {
        "format": kind,
        "parameters": f"{params / 1e6:.2f} M",
        "channels": channels,
        "downsampling": getattr(module, "downsampling", None) or "not said (32 assumed)",
        "border": getattr(module, "border", 0),
    }
    known = {"bands": channels}
    return Inspection(str(path), kind, facts, asdict(spec) if attached else None,
                      spec_template(**known))


def _is_package(path: Path) -> bool:
    from tilerun.errors import ModelError
    from tilerun.models.package import read_spec

    try:
        read_spec(path)
    except ModelError:
        return False
    return True


def _inspect_state(path: Path, kind: str, allow_pickle: bool) -> Inspection:
    """A bare state dict: its tensors, and a template that must name the architecture."""
    from tilerun.models.loading import read_state_dict

    state = read_state_dict(path, allow_pickle=allow_pickle)
    first = next(iter(state.items()), None)
    facts: dict[str, Any] = {
        "format": f"{kind} state dict (no spec: the spec must name its architecture)",
        "tensors": len(state),
        "parameters": f"{sum(t.numel() for t in state.values()) / 1e6:.2f} M",
        "first tensor": f"{first[0]} {tuple(first[1].shape)}" if first else None,
    }
    template = {"architecture": None, "arguments": {}, **spec_template()}
    return Inspection(str(path), kind, facts, None, template)


def _shape(shape: tuple[int | str, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"
