"""``tilerun model pack``: attach a spec to any model file, for good.

What is written depends on what comes in (the format is read from the file, as when loading):

* ONNX (``.onnx``): the same graph, with the spec's JSON in the model's ``metadata_props``
  under ``tilerun.spec`` and the downsampling factor (traced from the graph where the file
  does not say it) under ``tilerun.downsampling``;
* TorchScript: the same archive, the spec in its extra file ``tilerun_spec.json``;
* torch.export (``.pt2``): the same program, the spec in its extra file ``tilerun_spec.json``;
* a state dict (safetensors; a pickle only with ``allow_pickle``, weights only): a safetensors
  package, the spec naming the architecture that takes the weights (tilerun's, ``smp.*``,
  ``monai.*`` or an entry point's; see :mod:`tilerun.models.architectures`).

Nothing is unpickled without ``allow_pickle``, no code is imported from the file. The result is
written under a temporary name, loaded back with the spec (which checks the spec against the
model: bands, fixed tile size, output name) and only then renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from tilerun.errors import ModelError, OutputError
from tilerun.models.loading import (
    SPEC_FILE,
    _refuse_pickled_members,
    _unreadable,
    _weights_only_torch_load,
    build_from_state,
    model_format,
    read_state_dict,
)
from tilerun.models.package import write_package
from tilerun.models.spec import ModelSpec


def pack_model(path: str | Path, spec: ModelSpec, out: str | Path, *,
               allow_pickle: bool = False) -> str:
    """Write ``path``'s model with ``spec`` attached to ``out``; returns the format written
    (``onnx``, ``torchscript``, ``export`` or ``safetensors``)."""
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise ModelError(path, "no such model file")
    if not out.parent.is_dir():
        raise OutputError(out, "its folder does not exist")
    kind = "onnx" if path.suffix.lower() == ".onnx" else model_format(path)
    if kind == "onnx" and out.suffix.lower() != ".onnx":
        raise OutputError(out, "an ONNX model is written as ONNX: give the output the suffix "
                          ".onnx")
    handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=out.suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        written = _write(kind, path, spec, temporary, allow_pickle)
        _check(temporary, written)
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    return "safetensors" if kind in ("safetensors", "pickle") else kind


def _write(kind: str, path: Path, spec: ModelSpec, out: Path, allow_pickle: bool) -> ModelSpec:
    if kind == "onnx":
        return _pack_onnx(path, spec, out)
    if kind == "torchscript":
        import torch

        extra = {SPEC_FILE: ""}
        with _unreadable(path, "a TorchScript archive"):
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        torch.jit.save(module, str(out), _extra_files={SPEC_FILE: spec.to_json()})
        return spec
    if kind == "export":
        import torch

        _refuse_pickled_members(path, allow_pickle)
        with _unreadable(path, "a torch.export program"), _weights_only_torch_load():
            program = torch.export.load(str(path))
        torch.export.save(program, str(out), extra_files={SPEC_FILE: spec.to_json()})
        return spec
    module = build_from_state(read_state_dict(path, allow_pickle=allow_pickle), spec, path)
    from tilerun.models.handle import _first_conv_channels

    if spec.bands is None:
        spec = replace(spec, bands=_first_conv_channels(module))
    write_package(module, spec, out)
    return spec


def _pack_onnx(path: Path, spec: ModelSpec, out: Path) -> ModelSpec:
    import onnx

    from tilerun.models.onnx_graph import DOWNSAMPLING_KEY, read_geometry
    from tilerun.models.onnx_runtime import SPEC_KEY

    geometry = read_geometry(path)
    try:
        model = onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError and others of its own
        raise ModelError(path, f"is not an ONNX model tilerun can read ({err})") from err
    props = {p.key: p.value for p in model.metadata_props}
    props[SPEC_KEY] = spec.to_json()
    props.setdefault(DOWNSAMPLING_KEY, str(geometry.downsampling))
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    try:
        onnx.save(model, str(out))
    except (OSError, ValueError) as err:
        raise OutputError(out, f"cannot be written ({err})") from err
    return spec


def _check(out: Path, spec: ModelSpec) -> None:
    """Load the written file back: its spec must be the one given, and fit the model."""
    from tilerun.models.handle import as_model

    loaded = as_model(out).spec  # as_model fills in bands and border the module tells
    if replace(loaded, bands=spec.bands, border=spec.border) != spec:
        raise ModelError(out, "the written spec does not read back as given")
