"""Model packages: one safetensors file whose metadata carries a JSON spec.

Loading a package never executes code from the file: safetensors holds raw tensors, and the
spec names an architecture from tilerun's own registry (:data:`ARCHITECTURES`) with its
arguments. The spec also carries what is needed to feed the model correctly: per-band mean/std
normalisation (applied by the engine in float32) and class names.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from tilerun.errors import ModelError
from tilerun.models.unet import PRESETS, UNet, build_unet

#: Version of the JSON spec stored under :data:`METADATA_KEY`.
SCHEMA_VERSION = 1
METADATA_KEY = "tilerun.spec"

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    name: (lambda n: lambda **kw: build_unet(n, **kw))(name) for name in ("unet", *PRESETS)
}


@dataclass(frozen=True)
class ModelSpec:
    """What a package says about its model."""

    architecture: str
    arguments: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, name: str) -> ModelSpec:
        try:
            data = json.loads(text)
            if data.get("schema_version") != SCHEMA_VERSION:
                raise ModelError(
                    name, f"spec schema {data.get('schema_version')} is not {SCHEMA_VERSION}"
                )
            for key in ("mean", "std", "class_names"):
                if data.get(key) is not None:
                    data[key] = tuple(data[key])
            return cls(**data)
        except (ValueError, TypeError) as err:
            raise ModelError(name, f"malformed model spec ({err})") from err


def save_package(
    module: UNet,
    path: str | Path,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
) -> ModelSpec:
    """Write a U-Net's weights and spec to one ``.safetensors`` file."""
    spec = ModelSpec(
        architecture="unet",
        arguments=module.config.to_dict(),
        mean=tuple(float(v) for v in mean) if mean is not None else None,
        std=tuple(float(v) for v in std) if std is not None else None,
        class_names=tuple(class_names) if class_names is not None else None,
    )
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata={METADATA_KEY: spec.to_json()})
    return spec


def read_spec(path: str | Path) -> ModelSpec:
    """The spec of a package, without loading its weights."""
    from safetensors import safe_open

    name = str(path)
    try:
        with safe_open(name, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ModelError(name, f"not a safetensors model package ({err})") from err
    if METADATA_KEY not in metadata:
        raise ModelError(
            name, f"safetensors file has no {METADATA_KEY!r} metadata; not a tilerun package"
        )
    return ModelSpec.from_json(metadata[METADATA_KEY], name)


def load_package(path: str | Path) -> tuple[nn.Module, ModelSpec]:
    """Build the architecture the spec names and load the weights into it (strictly)."""
    name = str(path)
    if not Path(path).is_file():
        raise ModelError(name, "no such model file")
    spec = read_spec(path)
    if spec.architecture not in ARCHITECTURES:
        raise ModelError(name, f"unknown architecture {spec.architecture!r}")
    try:
        module = ARCHITECTURES[spec.architecture](**spec.arguments)
        module.load_state_dict(load_file(name), strict=True)
    except (RuntimeError, TypeError, SafetensorError) as err:
        raise ModelError(name, f"weights do not fit the spec's architecture ({err})") from err
    return module.eval(), spec
