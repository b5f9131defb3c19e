"""Model packages: one safetensors file whose metadata carries the JSON :class:`ModelSpec`.

Loading a package never executes code from the file: safetensors holds raw tensors, and the
spec names an architecture from tilerun's own registry (:data:`ARCHITECTURES`) with its
arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from tilerun.errors import ModelError
from tilerun.models.architectures import resolve
from tilerun.models.spec import ModelSpec
from tilerun.models.unet import PRESETS, UNet, build_unet

METADATA_KEY = "tilerun.spec"
#: safetensors' own limit on the JSON header (100 MB); a longer one is a damaged file.
MAX_HEADER_BYTES = 100_000_000

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    name: (lambda n: lambda **kw: build_unet(n, **kw))(name) for name in ("unet", *PRESETS)
}


def register_architecture(name: str, builder: Callable[..., nn.Module]) -> None:
    """Make ``builder(**arguments)`` loadable from packages whose spec names ``name``."""
    ARCHITECTURES[name] = builder


def architecture_of(module: nn.Module) -> tuple[str, dict[str, Any]]:
    """The registry name and arguments that rebuild ``module`` (tilerun's own models)."""
    config = getattr(module, "config", None)
    name = getattr(module, "architecture", "unet" if isinstance(module, UNet) else None)
    if name not in ARCHITECTURES or config is None:
        raise ModelError(
            type(module).__name__,
            "only tilerun's registered architectures can be "
            "packaged; export other modules with TorchScript or torch.export",
        )
    return name, config.to_dict()


def save_package(module: nn.Module, path: str | Path, **spec: Any) -> ModelSpec:
    """Write a registered model's weights and spec (any :class:`ModelSpec` field) to one file.

    ``bands`` defaults to the module's input channels, so band-count checks always work.
    """
    name, arguments = architecture_of(module)
    if spec.get("bands") is None:
        spec["bands"] = arguments.get("in_channels")
    if not spec.get("border"):
        spec["border"] = int(getattr(module, "border", 0))
    full = ModelSpec.from_dict({"architecture": name, "arguments": arguments, **spec}, str(path))
    write_package(module, full, path)
    return full


def write_package(module: nn.Module, spec: ModelSpec, path: str | Path) -> None:
    """Write ``module``'s tensors with ``spec``, which must name the architecture that
    rebuilds it (a registered one, ``smp.<Class>``, ``monai.<Class>`` …)."""
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata={METADATA_KEY: spec.to_json()})


def check_header(path: str | Path) -> None:
    """Refuse a file that is no safetensors file (no JSON ``{`` after the 8-byte header
    length), or one whose header length runs past the end of the file or safetensors' limit.

    safetensors would refuse it too, but as "header too large" or "invalid header", which does
    not say that the file is damaged (an absurd length is what a cut or overwritten file has).
    """
    name = str(path)
    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as err:
        raise ModelError(name, f"cannot be read ({err.strerror or err})") from err
    if head[8:9] != b"{":
        raise ModelError(name, "not a safetensors model package (no JSON header after 8 bytes)")
    length = int.from_bytes(head[:8], "little")
    if 8 + length > size or length > MAX_HEADER_BYTES:
        raise ModelError(
            name, f"safetensors header is corrupt: it declares {length:,} bytes of JSON but the "
            f"file has {size:,} bytes (a damaged or truncated file?)",
        )


def read_spec(path: str | Path) -> ModelSpec:
    """The spec of a package, without loading its weights."""
    name = str(path)
    check_header(path)
    try:
        with safe_open(name, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ModelError(name, f"not a safetensors model package ({err})") from err
    if METADATA_KEY not in metadata:
        raise ModelError(
            name,
            f"safetensors file has no {METADATA_KEY!r} metadata; "
            "build a package with `tilerun model pack`",
        )
    return ModelSpec.from_json(metadata[METADATA_KEY], name)


def load_package(path: str | Path) -> tuple[nn.Module, ModelSpec]:
    """Build the architecture the spec names and load the weights into it (strictly)."""
    name = str(path)
    if not Path(path).is_file():
        raise ModelError(name, "no such model file")
    spec = read_spec(path)
    builder = resolve(spec.architecture, ARCHITECTURES, name)
    try:
        module = builder(**(spec.arguments or {}))
        module.load_state_dict(load_file(name), strict=True)
    except (RuntimeError, TypeError, SafetensorError) as err:
        first = str(err).splitlines()[0]
        raise ModelError(name, f"weights do not fit the spec's architecture ({first})") from err
    return module.eval(), spec
