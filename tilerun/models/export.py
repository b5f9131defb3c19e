"""Exporting a model, with its spec, to TorchScript or ONNX for deployment elsewhere.

* ``torchscript``: the module is traced on a ``(2, bands, tile, tile)`` example and saved
  with ``torch.jit.save``; the spec rides along as the extra file ``tilerun_spec.json`` (what
  :func:`tilerun.models.load_model` reads back), and the archive's top module carries
  ``downsampling`` and ``border`` attributes, so the engine picks valid tile sizes.
* ``onnx``: ``torch.onnx.export`` (the ``torch.export``-based exporter, opset
  :data:`ONNX_OPSET`) with a dynamic batch axis and, where the model allows, dynamic height and
  width; the spec is stored in the model's ``metadata_props`` under ``tilerun.spec`` and the
  downsampling factor under ``tilerun.downsampling``. Needs the packages ``onnx`` and
  ``onnxscript`` (``onnxruntime`` to check or run the result), all dependencies of tilerun.

Tracing records the operations run on the example, so a model whose computation depends on
the input size in Python (e.g. valid-padding U-Nets, which crop their skip connections) is
only exact at the example's size: the exported spec then records ``tile``.

``embed_normalisation`` puts the spec's input normalisation, ``x' = (x - mean) / std`` (or the
dtype range of ``scale = "dtype_range"``, which then needs the spec's ``dtype``), into the
graph itself, for runtimes that feed raw pixel values; the written spec says
``embedded_normalisation``, so tilerun does not normalise twice when it runs the export.

Every export is checked: the written file is loaded back and must reproduce the source
module's output on the example (``check=False`` skips this, e.g. without onnxruntime).
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tilerun.errors import ModelError, OptionError, OutputError, first_line
from tilerun.models.handle import ModelHandle, as_model
from tilerun.models.loading import SPEC_FILE, load_model
from tilerun.models.normalise import normalisation
from tilerun.models.onnx_runtime import DOWNSAMPLING_KEY, SPEC_KEY, load_onnx
from tilerun.models.package import architecture_of
from tilerun.models.spec import ModelSpec

FORMATS = ("torchscript", "onnx")
ONNX_OPSET = 18
DEFAULT_TILE = 256
EXAMPLE_BATCH = 2  # not 1: torch.export specialises size-1 dimensions
CHECK_TOLERANCE = 1e-4
INSTALL_HINT = "they are dependencies of tilerun: pip install onnx onnxscript"


class _Exported(nn.Module):
    """The exported archive's top module: the traced model plus what the engine reads off it.

    (No class-level annotations: with postponed evaluation TorchScript cannot resolve them;
    it infers the ``int`` attributes from their values.)
    """

    def __init__(self, model: nn.Module, downsampling: int, border: int) -> None:
        super().__init__()
        self.model = model
        self.downsampling = downsampling
        self.border = border

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _Normalising(nn.Module):
    """``model((x - offset) / scale)``, per band: the normalisation inside the graph."""

    def __init__(self, model: nn.Module, offset: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.offset: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("offset", offset.reshape(1, -1, 1, 1))
        self.register_buffer("scale", scale.reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.offset) / self.scale)


def _embedded(handle: ModelHandle, example: torch.Tensor) -> tuple[ModelHandle, torch.Tensor]:
    """The handle with its normalisation in the graph, and the example in raw values."""
    spec = handle.spec
    if spec.embedded_normalisation:
        raise ModelError(handle.name, "its normalisation is already embedded in the graph")
    dtype = np.dtype(spec.dtype) if spec.dtype is not None else None
    found = normalisation(spec, example.shape[1], dtype)
    if found is None:
        raise ModelError(handle.name, "has no normalisation to embed (the spec needs mean/std, "
                         "or scale dtype_range with a dtype)")
    offset, scale = torch.from_numpy(found[0]), torch.from_numpy(found[1])
    module = _Normalising(handle.module, offset, scale)
    raw = example * scale.reshape(1, -1, 1, 1) + offset.reshape(1, -1, 1, 1)
    spec = replace(spec, embedded_normalisation=True)
    return replace(handle, module=module, spec=spec), raw


def export_model(
    model: str | Path | nn.Module | ModelHandle,
    out_path: str | Path,
    format: str = "torchscript",
    tile: int | None = None,
    allow_pickle: bool = False,
    spec: ModelSpec | None = None,
    check: bool = True,
    embed_normalisation: bool = False,
) -> ModelSpec:
    """Write ``model`` (a model file, or a module with an optional ``spec``) to ``out_path``.

    ``tile`` is the example's edge (default: the spec's ``tile``, else 256); it must suit the
    model (a multiple of its downsampling factor). ``allow_pickle`` and ``spec`` are passed to
    :func:`~tilerun.models.load_model` for model files. ``embed_normalisation``: see the
    module's docstring. Returns the spec written.
    """
    if format not in FORMATS:
        raise OptionError("--format", f"choose from {FORMATS}, got {format!r}")
    out = Path(out_path)
    if not out.parent.is_dir():
        raise OutputError(out, "its folder does not exist")
    if format == "onnx":
        missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
        if missing:
            raise ModelError(out, f"ONNX export needs {' and '.join(missing)}; {INSTALL_HINT}")
    handle = _handle(model, allow_pickle, spec)
    written = handle.spec
    bands = written.bands
    if bands is None:
        raise ModelError(handle.name, "cannot tell the model's input bands; give a spec with bands")
    edge = _tile(tile if tile is not None else written.tile, handle)
    if written.border and written.tile is None:
        written = replace(written, tile=edge)  # the trace is exact at this size only
    example = torch.randn(EXAMPLE_BATCH, bands, edge, edge,
                          generator=torch.Generator().manual_seed(0))
    if embed_normalisation:
        handle, example = _embedded(replace(handle, spec=written), example)
        written = handle.spec
    module = handle.module
    with torch.no_grad():
        try:
            expected = module(example)
        except (RuntimeError, ValueError, TypeError, AssertionError) as err:
            raise ModelError(handle.name, f"cannot run on {tuple(example.shape)} "
                             f"({first_line(err)})") from err
        if format == "torchscript":
            _export_torchscript(handle, written, example, out)
        else:
            _export_onnx(handle, written, example, out)
    if check:
        _check(out, format, example, expected)
    return written


def _handle(
    model: str | Path | nn.Module | ModelHandle, allow_pickle: bool, spec: ModelSpec | None
) -> ModelHandle:
    if isinstance(model, (str, Path)):
        module, loaded = load_model(model, allow_pickle=allow_pickle, spec=spec)
        return as_model(module, spec=loaded)
    if isinstance(model, ModelHandle):
        return model if spec is None else replace(model, spec=spec)
    if spec is None:
        try:  # tilerun's own architectures are named in the spec, as in a package
            name, arguments = architecture_of(model)
        except ModelError:
            pass
        else:
            spec = ModelSpec(architecture=name, arguments=arguments,
                             bands=arguments.get("in_channels"))
    return as_model(model, spec=spec)


def _tile(tile: int | None, handle: ModelHandle) -> int:
    edge = DEFAULT_TILE if tile is None else int(tile)
    multiple = handle.downsampling
    if edge < 1 or (handle.spec.border == 0 and edge % multiple):
        raise OptionError("--tile", f"{edge} is not a positive multiple of the model's "
                          f"downsampling factor {multiple}")
    return edge




@contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch's deprecation/tracer warnings and the ONNX exporter's chatter."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _export_torchscript(
    handle: ModelHandle, spec: ModelSpec, example: torch.Tensor, out: Path
) -> None:
    module = handle.module
    try:
        with _quiet():
            if not isinstance(module, torch.jit.ScriptModule):
                module = torch.jit.trace(module, example, check_trace=False)
            wrapped = torch.jit.script(_Exported(module, handle.downsampling, spec.border))
            torch.jit.save(wrapped, str(out), _extra_files={SPEC_FILE: spec.to_json()})
    except (RuntimeError, TypeError, ValueError, torch.jit.Error) as err:
        raise ModelError(handle.name, f"TorchScript export failed ({first_line(err)})") from err


def _export_onnx(handle: ModelHandle, spec: ModelSpec, example: torch.Tensor, out: Path) -> None:
    auto = torch.export.Dim.AUTO
    try:
        with _quiet():
            program: Any = torch.onnx.export(
                handle.module,
                (example,),
                dynamo=True,
                opset_version=ONNX_OPSET,
                dynamic_shapes=({0: auto, 2: auto, 3: auto},),
                input_names=["x"],
                output_names=["logits"],
                verbose=False,
            )
            props = program.model.metadata_props
            props[SPEC_KEY] = spec.to_json()
            props[DOWNSAMPLING_KEY] = str(handle.downsampling)
            program.save(str(out))
    except ImportError as err:
        needed = err.name or "onnxscript"
        raise ModelError(out, f"ONNX export needs {needed}; {INSTALL_HINT}") from err
    except Exception as err:  # the exporter raises many types of its own
        raise ModelError(handle.name, f"ONNX export failed ({first_line(err)})") from err


def _check(out: Path, format: str, example: torch.Tensor, expected: torch.Tensor) -> None:
    """Load the written file back and compare its output on the example with the source's."""
    if format == "onnx":
        if importlib.util.find_spec("onnxruntime") is None:
            return  # cannot run it here; written all the same
        module: nn.Module = load_onnx(out)[0]
    else:
        with _quiet():
            module = load_model(out)[0]
    with torch.no_grad(), _quiet():
        got = module(example)
    scale = max(1.0, float(expected.abs().max()))
    error = float((got.float() - expected.float()).abs().max()) if got.shape == expected.shape \
        else float("inf")
    if not error <= CHECK_TOLERANCE * scale:
        raise ModelError(out, f"the exported {format} model differs from the source by {error:.3g} "
                         f"on a {tuple(example.shape)} example")
