"""ONNX Runtime and OpenVINO: the fast CPU paths, fed by one cached ONNX file.

A torch model is exported once per (weights, tile, bands) with tilerun's checked exporter
(:func:`tilerun.models.export.export_model`, dynamic batch axis) and cached (see
:mod:`tilerun.backends.cache`); an ONNX model file is used as is. Measured on 2 cores for a
U-Net (base 16, depth 4, batch 8×256²) against eager NCHW PyTorch (0.70–0.81 s per batch):
ONNX Runtime 0.233 s, OpenVINO 0.245 s at f32 and 0.099 s at bf16 (a CPU with AMX), both fp32
runtimes within 5e-7 relative (benchmarks/RESULTS.md, 2026-12-01).

Neither runtime phones home: ONNX Runtime has no telemetry on Linux, and tilerun only uses
OpenVINO's runtime (``Core.read_model``/``compile_model``), never its conversion tools, the
only part of OpenVINO that sends telemetry.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tilerun.backends.base import Backend, Compiled, ConversionError, Target
from tilerun.backends.cache import cache_dir, cached_file, model_key
from tilerun.errors import ModelError, first_line, ignoring
from tilerun.extras import install_hint, installed
from tilerun.models import ModelHandle
from tilerun.models.onnx_runtime import OnnxModule, in_fixed_batches

ONNX_OPSET = 17
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def onnx_file(model: ModelHandle, target: Target) -> Path:
    """The model as an ONNX file: its own file for an ONNX model, else a cached export."""
    if isinstance(model.module, OnnxModule):
        return Path(model.module.path)
    key = model_key(model, "onnx", target.bands, target.tile)
    path, _ = cached_file(cache_dir("backends") / f"{key}.onnx",
                          lambda out: _export(model, target, out))
    return path


def _export(model: ModelHandle, target: Target, out: Path) -> None:
    """TorchScript-based ONNX export first (0.8 s for a U-Net on 2 cores, and it takes
    TorchScript modules), then the ``torch.export``-based one (6–10 s, but it takes models
    the tracer cannot). Both give graphs ONNX Runtime runs at the same speed."""
    try:
        _export_traced(model.module, target, out)
    except ConversionError as traced:
        from tilerun.models.export import export_model

        handle = replace(model, spec=replace(model.spec, bands=target.bands))
        try:
            export_model(handle, out, format="onnx", tile=target.tile, check=False)
        except ModelError as err:
            raise ConversionError(f"{traced}; {err.problem}") from err


def _export_traced(module: torch.nn.Module, target: Target, out: Path) -> None:
    example = torch.zeros(2, target.bands, target.tile, target.tile)
    try:
        with ignoring(), torch.no_grad():
            torch.onnx.export(module, (example,), str(out), dynamo=False, input_names=["x"],
                              output_names=["logits"], dynamic_axes={"x": {0: "n"}},
                              opset_version=ONNX_OPSET)
    except Exception as err:  # the TorchScript exporter raises many types of its own
        raise ConversionError(f"the traced ONNX export failed ({first_line(err)})") from err


def _output_and_batch(model: ModelHandle) -> tuple[list[str] | None, int | None]:
    """The output to fetch (an ONNX model's chosen one; None: the first) and the batch its
    graph fixes (None: any)."""
    if isinstance(model.module, OnnxModule):
        return [model.module.output], model.module.fixed_batch
    return None, None


def _output_index(graph: Any, output: list[str] | None) -> int:
    """The position of the chosen output among an OpenVINO model's outputs."""
    if output is None:
        return 0
    for index, port in enumerate(graph.outputs):
        if output[0] in port.get_names():
            return index
    raise ConversionError(f"OpenVINO does not see the output {output[0]!r}")


def _missing(package: str, target: Target) -> str | None:
    if not installed(package):
        return f"{package} is not installed ({install_hint(package)})"
    if target.device.type != "cpu":
        return f"tilerun runs {package} on CPUs only"
    return None


def _numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to(torch.float32).numpy())


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime's CPU execution provider: fp32 and INT8 (quantized) ONNX graphs.

    Its threads do not spin while waiting (``allow_spinning=0``): the engine's own threads
    read, blend and write on the same cores between batches.
    """

    name = "onnxruntime"
    precisions = ("fp32",)

    def unavailable(self, model: ModelHandle, target: Target) -> str | None:
        return _missing(self.name, target) or super().unavailable(model, target)

    def load(self, model: ModelHandle, target: Target) -> Compiled:
        import onnxruntime as ort

        path = onnx_file(model, target)
        options = ort.SessionOptions()
        options.intra_op_num_threads = target.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own, undocumented exception types
            raise ConversionError(f"onnxruntime cannot load the model ({err})") from err
        name = session.get_inputs()[0].name
        output, batch = _output_and_batch(model)

        def infer(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(output, {name: _numpy(x)})[0])

        return Compiled(self.name, lambda x: in_fixed_batches(infer, x, batch))


class OpenVinoBackend(Backend):
    """OpenVINO's CPU plugin for one static batch shape, at the precision asked for.

    OpenVINO runs bf16 by default on CPUs that have it; tilerun always passes the precision
    hint, so fp32 is never lowered silently. Threads are not pinned to cores, which would
    starve the engine's own threads.
    """

    name = "openvino"

    def unavailable(self, model: ModelHandle, target: Target) -> str | None:
        return _missing(self.name, target) or super().unavailable(model, target)

    def load(self, model: ModelHandle, target: Target) -> Compiled:
        import openvino as ov

        path = onnx_file(model, target)
        logging.getLogger("openvino").setLevel(logging.ERROR)
        try:
            core = ov.Core()
            graph = core.read_model(str(path))
            output, fixed = _output_and_batch(model)
            batch = fixed or target.batch
            graph.reshape({graph.inputs[0]: [batch, target.bands, target.tile, target.tile]})
            index = _output_index(graph, output)
            compiled = core.compile_model(graph, "CPU", self._config(target))
            granted = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        except Exception as err:  # OpenVINO raises its own exception types
            raise ConversionError(f"OpenVINO cannot compile the model ({err})") from err
        wanted = OPENVINO_PRECISION[target.precision]
        if granted != wanted:  # never run another precision than the one asked for
            raise ConversionError(f"OpenVINO grants {granted}, not {wanted}, on this CPU")
        request = compiled.create_infer_request()

        def infer(x: torch.Tensor) -> torch.Tensor:
            request.infer({0: _numpy(x)})
            return torch.from_numpy(request.get_output_tensor(index).data.copy())

        # batches of exactly ``batch`` tiles (its static shape): short ones padded, long split
        return Compiled(self.name, lambda x: in_fixed_batches(infer, x, batch), fixed_batch=True)

    @staticmethod
    def _config(target: Target) -> dict[str, Any]:
        return {
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[target.precision],
            "INFERENCE_NUM_THREADS": target.threads,
            "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": False,
            "CACHE_DIR": str(cache_dir("openvino")),
        }
