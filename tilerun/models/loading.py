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
import logging
import pickle
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from tilerun.errors import ModelError, first_line
from tilerun.models.architectures import resolve
from tilerun.models.package import ARCHITECTURES, check_header, load_package, read_spec
from tilerun.models.spec import ModelSpec

SPEC_FILE = "tilerun_spec.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".bin")
#: The member that marks a torch.export archive of torch < 2.6.
EXPORT_PROGRAM = "serialized_exported_program.json"
#: What torch appends to its loaders' messages that means nothing once they are one line.
TORCH_NOISE = ("(Could this error message be improved?", "Please check the warnings above")
#: What torch's loaders raise on a damaged or foreign archive: c10 errors are RuntimeErrors;
#: the export loader's schema checks add KeyError, TypeError, AttributeError, AssertionError
#: and ValueError (JSON); the unpickler and zipfile their own.
LOADER_ERRORS = (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError,
                 AssertionError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile)


def model_format(path: Path) -> str:
    """``safetensors``, ``torchscript``, ``export`` or ``pickle``, from the file's content.

    safetensors starts with a little-endian u64 header length followed by a JSON ``{`` (a
    length that does not fit the file is reported by the loader as a corrupt header, not taken
    for a pickle); zip archives are told apart by their members (:func:`_zip_format`).
    """
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{" and not head.startswith(b"PK"):
        return "safetensors"
    if not zipfile.is_zipfile(path):
        return "pickle"
    return _zip_format(path)


def _zip_format(path: Path) -> str:
    """What a zip archive holds, from its members (all under one top folder, which is dropped).

    torch.export programs have ``archive_format`` (torch ≥ 2.6) or
    ``serialized_exported_program.json``; TorchScript archives have ``code/`` and
    ``constants.pkl``; ``torch.save`` checkpoints only ``data.pkl`` (a pickle, whatever the
    suffix: a checkpoint renamed ``.pt2`` must not reach torch.export's loader). A ``.pt2``
    with none of these still goes to torch.export, which reports what it misses.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = {n.split("/", 1)[-1] for n in archive.namelist()}
    except (zipfile.BadZipFile, OSError) as err:
        raise ModelError(path, f"is a damaged zip archive ({err})") from err
    if "archive_format" in names or any(n.endswith(EXPORT_PROGRAM) for n in names):
        return "export"
    if "constants.pkl" in names or any(n.startswith("code/") for n in names):
        return "torchscript"
    if "data.pkl" in names:
        return "pickle"  # torch.save's zip format is still a pickle inside
    if path.suffix == ".pt2":
        return "export"
    raise ModelError(path, "is a zip archive but not a TorchScript archive, torch.export "
                     "program or torch.save checkpoint tilerun can read")


def load_model(
    path: str | Path, *, allow_pickle: bool = False, spec: ModelSpec | None = None
) -> tuple[nn.Module, ModelSpec]:
    """Load a model file and its spec: ``spec`` where given (it replaces the file's own, and
    names the architecture of a bare safetensors state dict), else the file's."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ModelError(path, "is not a regular file; give a model file")
    if not path.is_file():
        raise ModelError(path, "no such model file")
    if path.suffix.lower() == ".onnx":
        from tilerun.models.onnx_runtime import load_onnx

        return load_onnx(path, spec)
    kind = model_format(path)
    if kind == "safetensors":
        if spec is not None:  # the spec given replaces the package's (or names a state dict's)
            spec = _with_architecture(spec, path)
            return build_from_state(read_state_dict(path), spec, path), spec
        return load_package(path)
    if kind == "torchscript":
        extra = {SPEC_FILE: ""}
        with _unreadable(path, "a TorchScript archive"):
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        return module.eval(), _spec_or(spec, extra[SPEC_FILE], path)
    if kind == "export":
        _refuse_pickled_members(path, allow_pickle)
        extra = {SPEC_FILE: ""}
        with _unreadable(path, "a torch.export program"), _weights_only_torch_load():
            program = torch.export.load(str(path), extra_files=extra)
            module = program.module()
        return module, _spec_or(spec, extra[SPEC_FILE], path)
    state = read_state_dict(path, allow_pickle=allow_pickle)  # refuses unless allowed
    if spec is None:
        raise ModelError(path, "a pickled state dict needs a spec naming a tilerun architecture")
    return build_from_state(state, spec, path), spec


def _with_architecture(spec: ModelSpec, path: Path) -> ModelSpec:
    """``spec``, naming the package's own architecture where it names none (a spec given on
    the command line to change a package's normalisation need not repeat its architecture)."""
    if spec.architecture != "module":
        return spec
    try:
        stored = read_spec(path)
    except ModelError:
        return spec  # a bare state dict: build_from_state says the spec must name one
    return replace(spec, architecture=stored.architecture, arguments=stored.arguments)


def _refuse_pickled_members(path: Path, allow_pickle: bool) -> None:
    """A ``.pt2`` archive may mark weights ``use_pickle``; torch would unpickle them unsafely.

    A config that is not JSON is refused too (rather than guessed at), as a damaged archive.
    """
    if allow_pickle:
        return
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if not name.endswith(".json"):
                continue
            try:
                config = json.loads(archive.read(name))
            except ValueError as err:
                raise ModelError(path, "is not a torch.export program tilerun can read "
                                 f"({name} is not valid JSON)") from err
            if _uses_pickle(config):
                raise ModelError(path, f"{name} asks for pickled weights, and unpickling can "
                                 "run code hidden in the file; re-export without pickles")


def _uses_pickle(node: Any) -> bool:
    """Whether any mapping in a parsed JSON config says ``"use_pickle": true``."""
    if isinstance(node, dict):
        return node.get("use_pickle") is True or any(_uses_pickle(v) for v in node.values())
    if isinstance(node, list):
        return any(_uses_pickle(v) for v in node)
    return False


@contextlib.contextmanager
def _unreadable(path: Path, kind: str) -> Iterator[None]:
    """Turn a torch loader's failure on a damaged or foreign file into one :class:`ModelError`
    line, and keep its warnings and log output (which precede the failure) off the screen."""
    torch_log = logging.getLogger("torch")
    level = torch_log.level
    torch_log.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except LOADER_ERRORS as err:
        raise ModelError(path, f"is not {kind} tilerun can read ({_torch_first_line(err)})") \
            from err
    finally:
        torch_log.setLevel(level)


def _torch_first_line(err: BaseException) -> str:
    """The first line of an error, without the request for feedback torch appends."""
    line = first_line(err)
    for noise in TORCH_NOISE:
        line = line.split(noise)[0]
    return line.strip()


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
        check_header(path)
        try:
            return load_file(str(path))
        except SafetensorError as err:
            raise ModelError(path, f"not a readable safetensors file ({err})") from err
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
        raise ModelError(path, f"refused by the weights-only unpickler: {_torch_first_line(err)}"
                         ) from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # Lightning-style checkpoint
    if not isinstance(state, dict):
        raise ModelError(path, f"holds a {type(state).__name__}, not a state dict")
    return state


def build_from_state(state: dict[str, torch.Tensor], spec: ModelSpec, name: object) -> nn.Module:
    """The spec's architecture (see :mod:`tilerun.models.architectures`) with ``state``
    loaded strictly."""
    builder = resolve(spec.architecture, ARCHITECTURES, name)
    try:
        module = builder(**(spec.arguments or {}))
    except (TypeError, ValueError) as err:
        raise ModelError(name, f"{spec.architecture} does not take the spec's arguments "
                         f"({first_line(err)})") from err
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).splitlines()[0]
        raise ModelError(name, f"weights do not fit {spec.architecture} ({first})") from err
    return module.eval()
