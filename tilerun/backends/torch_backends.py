"""PyTorch backends: eager (channels-last, cuDNN autotuning) and ``torch.compile``.

Eager PyTorch in the default NCHW layout is slow on CPUs: oneDNN convolutions want
channels-last (NHWC) and reorder every activation otherwise. Measured on 2 cores for a U-Net
(base 16, depth 4, batch 8×256²): channels-last takes 0.353 s per batch against 0.70–0.81 s
in NCHW (2.0–2.3×, benchmarks/RESULTS.md), and matches it to 3e-7
relative. On CUDA, cuDNN's autotuner (``cudnn.benchmark``) picks the fastest kernels for the
one batch shape the runner feeds (short batches are padded to it), so it is on by default.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tilerun.backends.base import Backend, Compiled, ConversionError, Target
from tilerun.backends.cache import cache_dir
from tilerun.models import ModelHandle

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CHANNELS_LAST = torch.channels_last


def autocast(target: Target) -> Any:
    """The autocast context for the target's precision (none for fp32)."""
    dtype = AUTOCAST[target.precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(target.device.type, dtype=dtype)


def on_device(module: nn.Module, device: torch.device, channels_last: bool = False) -> nn.Module:
    """``module`` on ``device`` in eval mode, channels-last if asked and possible.

    Exported programs support neither ``.to()`` nor ``.eval()`` and need neither; a module
    that refuses the channels-last layout keeps its own (its inputs still arrive in it).
    """
    try:
        module = module.to(device).eval()
    except NotImplementedError:
        return module
    if channels_last:
        with contextlib.suppress(RuntimeError, TypeError, NotImplementedError):
            module = module.to(memory_format=CHANNELS_LAST)  # type: ignore[call-overload]
    return module


def _runner(module: Callable[[torch.Tensor], torch.Tensor], target: Target,
            channels_last: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=CHANNELS_LAST)
        with autocast(target):
            return module(x)

    return run


class EagerBackend(Backend):
    """The model as loaded, in the memory layout PyTorch runs it fastest in (the reference
    every other backend is checked against is this same module in NCHW, at fp32)."""

    name = "torch"

    def __init__(self, channels_last: bool = True) -> None:
        self.channels_last = channels_last

    def load(self, model: ModelHandle, target: Target) -> Compiled:
        cuda = target.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True
        module = on_device(model.module, target.device, self.channels_last)
        return Compiled(self.name, _runner(module, target, self.channels_last), fixed_batch=cuda)


class CompileBackend(Backend):
    """``torch.compile`` (inductor) for one fixed batch shape; opt-in, as compiling takes
    tens of seconds on a CPU. Inductor's kernels are cached in ``<cache>/inductor`` (unless
    ``TORCHINDUCTOR_CACHE_DIR`` is set), so later runs only trace."""

    name = "compile"

    def unavailable(self, model: ModelHandle, target: Target) -> str | None:
        if isinstance(model.module, torch.jit.ScriptModule):
            return "TorchScript modules cannot be compiled"
        return super().unavailable(model, target)

    def load(self, model: ModelHandle, target: Target) -> Compiled:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir("inductor")))
        module = on_device(model.module, target.device, channels_last=True)
        try:
            compiled: Any = torch.compile(module, dynamic=False)
        except (RuntimeError, TypeError) as err:
            raise ConversionError(f"torch.compile failed ({err})") from err
        return Compiled(self.name, _runner(compiled, target, True), fixed_batch=True)
