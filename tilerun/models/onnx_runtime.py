"""Running an ONNX model (as written by :func:`tilerun.models.export.export_model`) like a module.

The spec rides in the ONNX model's ``metadata_props`` under :data:`SPEC_KEY`, the downsampling
factor (what tile sizes must be multiples of) under :data:`DOWNSAMPLING_KEY`. Needs the optional
``onnxruntime`` package; ONNX files contain no pickles, so loading one runs no Python code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tilerun.errors import ModelError
from tilerun.models.spec import ModelSpec

SPEC_KEY = "tilerun.spec"
DOWNSAMPLING_KEY = "tilerun.downsampling"
DEFAULT_DOWNSAMPLING = 32
INSTALL_HINT = "it is a dependency of tilerun: pip install onnxruntime"


def _onnxruntime(subject: object) -> Any:
    try:
        import onnxruntime
    except ImportError as err:
        raise ModelError(subject, f"running ONNX models needs onnxruntime; {INSTALL_HINT}") from err
    return onnxruntime


class OnnxModule(nn.Module):
    """An ``onnxruntime.InferenceSession`` behind the ``nn.Module`` interface.

    ``forward(x)`` feeds ``x`` as float32 to the model's first input and returns its first
    output as a float32 tensor on ``x``'s device. CUDA is used when onnxruntime offers it, else
    the CPU. ``.to()``/``.eval()`` are accepted and change nothing (the session owns the
    weights). ``downsampling`` comes from the file's metadata, else 32. ``threads`` is
    onnxruntime's intra-op thread count (default: ``torch.get_num_threads()``).
    """

    def __init__(
        self, path: str | Path, providers: list[str] | None = None, threads: int | None = None
    ) -> None:
        super().__init__()
        ort = _onnxruntime(path)
        self.path = str(path)
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
        self.downsampling = _downsampling(self.metadata.get(DOWNSAMPLING_KEY), self.path)

    @property
    def spec(self) -> ModelSpec:
        """The spec stored in the file, or the default spec when there is none."""
        text = self.metadata.get(SPEC_KEY)
        return ModelSpec.from_json(text, self.path) if text else ModelSpec()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        out = self.session.run(None, {self.input_name: array})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)

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
        return ort.InferenceSession(self.path, sess_options=options, providers=self.providers)


def _downsampling(text: str | None, path: str) -> int:
    if text is None:
        return DEFAULT_DOWNSAMPLING
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ModelError(path, f"{DOWNSAMPLING_KEY} metadata must be an integer ≥ 1, got {text!r}")
    return value


def load_onnx(path: str | Path, spec: ModelSpec | None = None) -> tuple[OnnxModule, ModelSpec]:
    """An ONNX file as an :class:`OnnxModule` and its spec (``spec`` replaces the stored one)."""
    if not Path(path).is_file():
        raise ModelError(path, "no such model file")
    module = OnnxModule(path)
    return module, spec if spec is not None else module.spec
