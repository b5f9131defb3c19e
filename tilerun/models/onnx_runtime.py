"""Running any ONNX model (tilerun's exports or another project's) like a module.

The spec rides in the ONNX model's ``metadata_props`` under :data:`SPEC_KEY` (``tilerun model
pack MODEL.onnx --spec SPEC.json`` puts it there), the downsampling factor (what tile sizes
must be multiples of) under :data:`DOWNSAMPLING_KEY`; without that key the factor is traced
through the graph (:mod:`tilerun.models.onnx_graph`), as are a fixed input size and batch.
ONNX files contain no pickles, so loading one runs no Python code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tilerun.errors import ModelError
from tilerun.models.onnx_graph import DOWNSAMPLING_KEY, OnnxGeometry, read_geometry
from tilerun.models.spec import ModelSpec

SPEC_KEY = "tilerun.spec"
__all__ = ["DOWNSAMPLING_KEY", "SPEC_KEY", "OnnxModule", "in_fixed_batches", "load_onnx"]
INSTALL_HINT = "it is a dependency of tilerun: pip install onnxruntime"


def _onnxruntime(subject: object) -> Any:
    try:
        import onnxruntime
    except ImportError as err:
        raise ModelError(subject, f"running ONNX models needs onnxruntime; {INSTALL_HINT}") from err
    return onnxruntime


class OnnxModule(nn.Module):
    """An ``onnxruntime.InferenceSession`` behind the ``nn.Module`` interface.

    ``forward(x)`` feeds ``x`` as float32 to the model's input and returns the output named
    :attr:`output` (default: its first) as a float32 tensor on ``x``'s device; a model with a
    fixed batch gets exactly that many tiles per call (short batches padded, long ones split).
    CUDA is used when onnxruntime offers it, else the CPU. ``.to()``/``.eval()`` are accepted
    and change nothing (the session owns the weights). ``geometry`` is what the file says
    (:class:`~tilerun.models.onnx_graph.OnnxGeometry`): ``downsampling``, ``fixed_tile`` and
    ``fixed_batch`` come from it. ``threads`` is onnxruntime's intra-op thread count (default:
    ``torch.get_num_threads()``).
    """

    def __init__(
        self, path: str | Path, providers: list[str] | None = None, threads: int | None = None
    ) -> None:
        super().__init__()
        ort = _onnxruntime(path)
        self.path = str(path)
        self.geometry: OnnxGeometry = read_geometry(path)
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                         if p in available] or list(available)
        self.providers = list(providers)
        self.threads = threads if threads is not None else torch.get_num_threads()
        try:
            self.session = self._session(ort)
        except Exception as err:  # onnxruntime raises its own, undocumented exception types
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ModelError(path, f"onnxruntime cannot load this model ({first})") from err
        self.input_name: str = self.session.get_inputs()[0].name
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.downsampling = self.geometry.downsampling
        size = self.geometry.fixed_size
        if size is not None and size[0] != size[1]:
            raise ModelError(path, f"takes only {size[0]} × {size[1]} px inputs; tilerun's tiles "
                             "are square")
        self.fixed_tile: int | None = size[0] if size is not None else None
        self.fixed_batch: int | None = self.geometry.fixed_batch
        self.output: str = self.geometry.outputs[0].name if self.geometry.outputs else ""

    def choose_output(self, name: str | None) -> None:
        """Return the output called ``name`` (None: the first); one line naming the outputs
        when there is no such output."""
        names = [o.name for o in self.geometry.outputs]
        if name is None:
            return
        if name not in names:
            raise ModelError(self.path, f"has no output {name!r}; its outputs are {names}")
        self.output = name

    @property
    def spec(self) -> ModelSpec:
        """The spec stored in the file, or the default spec when there is none."""
        text = self.metadata.get(SPEC_KEY)
        return ModelSpec.from_json(text, self.path) if text else ModelSpec()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def run(batch: torch.Tensor) -> torch.Tensor:
            array = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
            out = self.session.run([self.output], {self.input_name: array})[0]
            return torch.from_numpy(np.asarray(out, dtype=np.float32))

        return in_fixed_batches(run, x, self.fixed_batch).to(x.device)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["session"]  # sessions do not pickle; rebuilt from the path
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.session = self._session(_onnxruntime(self.path))

    def _session(self, ort: Any) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, self.threads)
        # as the engine's onnxruntime backend: no spinning threads (the engine's own threads
        # read, blend and write on the same cores), so this session serves runs as it is
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        return ort.InferenceSession(self.path, sess_options=options, providers=self.providers)


def in_fixed_batches(
    run: Any, x: torch.Tensor, batch: int | None
) -> torch.Tensor:
    """``run(x)`` for a model that takes exactly ``batch`` tiles per call (None: any number):
    ``x`` split into such batches, the last padded with zero tiles, and the padding dropped."""
    n = int(x.shape[0])
    if batch is None or n == batch:
        return run(x)
    parts = []
    for start in range(0, n, batch):
        part = x[start:start + batch]
        short = batch - int(part.shape[0])
        if short:
            part = torch.cat([part, part.new_zeros((short, *part.shape[1:]))])
        parts.append(run(part)[: batch - short])
    return torch.cat(parts)


def load_onnx(path: str | Path, spec: ModelSpec | None = None) -> tuple[OnnxModule, ModelSpec]:
    """An ONNX file as an :class:`OnnxModule` and its spec (``spec`` replaces the stored one)."""
    if not Path(path).is_file():
        raise ModelError(path, "no such model file")
    module = OnnxModule(path)
    chosen = spec if spec is not None else module.spec
    module.choose_output(chosen.output)
    return module, chosen
