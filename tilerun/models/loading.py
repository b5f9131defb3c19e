"""Loading models from disk without ever running code from the file unasked.

* ``.safetensors`` packages: raw tensors + a JSON spec; the architecture comes from tilerun.
* TorchScript archives (``torch.jit.save``) and ``torch.export`` programs (``.pt2``): compiled
  graphs, with a spec riding along as the extra file :data:`SPEC_FILE`. A ``.pt2`` whose
  weights are marked as pickles is refused, and torch's loaders run with ``weights_only``
  forced on (``torch.export.load`` would otherwise retry unsafely).
* ONNX files run through onnxruntime (a dependency of tilerun).
* Pickled checkpoints (``.pt``/``.pth``/``.ckpt`` …): unpickling can execute arbitrary code, so
  they are refused unless ``allow_pickle=True`` — and even then read with
  ``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers. A
  state dict needs a spec to say which architecture it belongs to.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from tilerun.errors import ModelError
from tilerun.models.package import ARCHITECTURES, load_package
from tilerun.models.spec import ModelSpec

SPEC_FILE = "tilerun_spec.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".bin")


def model_format(path: Path) -> str:
    """``safetensors``, ``torchscript``, ``export`` or ``pickle``, from the file's content.

    safetensors starts with a little-endian u64 header length followed by a JSON ``{``;
    TorchScript and ``torch.export`` archives are zip files with telltale members.
    """
    with path.open("rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        return "safetensors"
    if not zipfile.is_zipfile(path):
        return "pickle"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any("/code/" in n for n in names) or any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if path.suffix == ".pt2" or any(n.endswith("serialized_exported_program.json") for n in names):
        return "export"
    return "pickle"  # torch.save's zip format is still a pickle inside


def load_model(
    path: str | Path, *, allow_pickle: bool = False, spec: ModelSpec | None = None
) -> tuple[nn.Module, ModelSpec]:
    """Load a model file and its spec (from the file, or ``spec`` for formats without one)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "no such model file")
    if path.suffix.lower() == ".onnx":
        from tilerun.models.onnx_runtime import load_onnx

        return load_onnx(path, spec)
    kind = model_format(path)
    if kind == "safetensors":
        return load_package(path)
    if kind == "torchscript":
        extra = {SPEC_FILE: ""}
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        return module.eval(), _spec_or(spec, extra[SPEC_FILE], path)
    if kind == "export":
        _refuse_pickled_members(path, allow_pickle)
        extra = {SPEC_FILE: ""}
        with _weights_only_torch_load():
            program = torch.export.load(str(path), extra_files=extra)
        return program.module(), _spec_or(spec, extra[SPEC_FILE], path)
    state = read_state_dict(path, allow_pickle=allow_pickle)  # refuses unless allowed
    if spec is None:
        raise ModelError(path, "a pickled state dict needs a spec naming a tilerun architecture")
    return build_from_state(state, spec, path), spec


def _refuse_pickled_members(path: Path, allow_pickle: bool) -> None:
    """A ``.pt2`` archive may mark weights ``use_pickle``; torch would unpickle them unsafely."""
    if allow_pickle:
        return
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(".json") and _uses_pickle(archive.read(name)):
                raise ModelError(path, f"{name} asks for pickled weights, and unpickling can "
                                 "run code hidden in the file; re-export without pickles")


def _uses_pickle(text: bytes) -> bool:
    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            return node.get("use_pickle") is True or any(walk(v) for v in node.values())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return False

    try:
        return walk(json.loads(text))
    except ValueError:
        return True  # unreadable config: refuse rather than guess


@contextlib.contextmanager
def _weights_only_torch_load() -> Iterator[None]:
    """Force ``torch.load(weights_only=True)`` inside torch's own loaders.

    ``torch.export.load`` retries a failed safe load with ``weights_only=False``; this makes the
    retry safe too.
    """
    original = torch.load

    def safe_load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    torch.load = safe_load
    try:
        yield
    finally:
        torch.load = original


def _spec_or(spec: ModelSpec | None, text: str, path: Path) -> ModelSpec:
    if spec is not None:
        return spec
    return ModelSpec.from_json(text, str(path)) if text else ModelSpec()


def read_state_dict(path: str | Path, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Tensors from safetensors, or from a pickle only with ``allow_pickle`` (weights only)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "no such file")
    if model_format(path) == "safetensors":
        return load_file(str(path))
    if not allow_pickle:
        raise ModelError(
            path,
            "is a pickled checkpoint, and unpickling can run code hidden in the file; convert "
            "it once with `tilerun model pack CHECKPOINT --spec SPEC.json -o MODEL.safetensors "
            "--allow-pickle`, or pass --allow-pickle to load it (weights only)",
        )
    try:
        state: Any = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        first = str(err).splitlines()[0]
        raise ModelError(path, f"refused by the weights-only unpickler: {first}") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # Lightning-style checkpoint
    if not isinstance(state, dict):
        raise ModelError(path, f"holds a {type(state).__name__}, not a state dict")
    return state


def build_from_state(state: dict[str, torch.Tensor], spec: ModelSpec, name: object) -> nn.Module:
    """The spec's registered architecture with ``state`` loaded strictly."""
    if spec.architecture not in ARCHITECTURES:
        raise ModelError(name, f"spec names unknown architecture {spec.architecture!r}")
    module = ARCHITECTURES[spec.architecture](**(spec.arguments or {}))
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).splitlines()[0]
        raise ModelError(name, f"weights do not fit {spec.architecture} ({first})") from err
    return module.eval()
