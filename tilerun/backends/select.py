"""Choosing the backend: the fastest one installed that computes what eager PyTorch does.

``auto`` tries these candidates, then races those that pass (see
:mod:`tilerun.backends.race`; the winner is remembered, so later runs load only it):

==========  =========  ==================================
device      precision  order
==========  =========  ==================================
CPU         fp32       onnxruntime, openvino, torch
CPU         bf16/fp16  openvino, torch
CUDA        any        torch (channels-last, cuDNN autotuning)
==========  =========  ==================================

On a CPU, eager ``torch`` is the fallback: checked (and run) only when no other candidate
passes (see :func:`tilerun.backends.race.fallback_only`). ``compile`` is never picked by
``auto`` (compiling takes tens of seconds); ask for it.
On CUDA tilerun runs only torch, so there is nothing to race.

An ONNX model file is its own reference: ONNX Runtime is the runtime its graph is defined
against, so ``auto`` runs it on ONNX Runtime straight away, with no conversion, check or race
(this saves the seconds a race of a large graph costs at start-up). OpenVINO runs it only when
asked (``--backend openvino``), checked against ONNX Runtime within
:data:`ONNX_TOLERANCE` — two runtimes' fp32 kernels sum in different orders, which a deep
graph accumulates to about 2e-4 of the logits' scale (ukis-csmask's EfficientNet-B4 U-Net:
2.0e-4, one label in 130 000 flipped).

A backend asked for by name (not ``auto``) runs, or the run stops before any work with an
:class:`~tilerun.errors.OptionError` that says why (exit code 2): never another backend in its
place.

Every candidate is converted, then run on the probe batch and compared with the eager fp32
module in NCHW: the relative error ``max|y - y_ref| / max|y_ref|`` must be at most
:data:`TOLERANCE` for the precision (fp32: 1e-4; reduced precisions only have to be what
their 8 or 11 mantissa bits allow). A candidate that cannot convert, fails to run or misses
the tolerance is not used, and one warning line says why. When nothing else works, the model
runs as loaded (eager, NCHW; an ONNX model through its ONNX Runtime session), which is the
reference itself.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import torch

from tilerun.backends.base import (
    Backend,
    BackendWarning,
    Compiled,
    ConversionError,
    Target,
    padded,
)
from tilerun.backends.names import CHOICES
from tilerun.backends.onnx_backends import OnnxRuntimeBackend, OpenVinoBackend
from tilerun.backends.race import (
    choice_note,
    fallback_only,
    full_batch,
    race,
    remember,
    remembered,
)
from tilerun.backends.torch_backends import CompileBackend, EagerBackend, autocast
from tilerun.errors import OptionError, first_line
from tilerun.models import ModelHandle
from tilerun.models.onnx_runtime import OnnxModule
from tilerun.phases import note

_ALL: tuple[Backend, ...] = (EagerBackend(), CompileBackend(), OnnxRuntimeBackend(),
                             OpenVinoBackend())
BACKENDS: dict[str, Backend] = {backend.name: backend for backend in _ALL}
TOLERANCE = {"fp32": 1e-4, "bf16": 3e-2, "fp16": 1e-2}
#: an ONNX model run by another runtime than ONNX Runtime, relative to the logits' scale
ONNX_TOLERANCE = {**TOLERANCE, "fp32": 1e-3}


@dataclass(frozen=True)
class Selection:
    """The backend chosen, its relative error on the probe batch, and the seconds spent
    converting (or fetching from the cache), loading and checking candidates."""

    compiled: Compiled
    error: float
    seconds: float
    #: seconds per full batch of each candidate when ``auto`` raced them (else empty)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return self.compiled.backend


def auto_order(model: ModelHandle, target: Target) -> tuple[str, ...]:
    """The candidates ``auto`` tries for this model and target, in the order it tries them
    (the race decides between those that pass)."""
    if target.device.type != "cpu":
        return ("torch",)
    order = ("onnxruntime", "openvino") if target.precision == "fp32" else ("openvino",)
    return order if isinstance(model.module, OnnxModule) else (*order, "torch")


def as_loaded(model: ModelHandle, module: torch.nn.Module, target: Target) -> Compiled:
    """The model run as loaded (eager NCHW with autocast; an ONNX model through its session)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        with autocast(target):
            return module(x)

    name = "onnxruntime" if isinstance(model.module, OnnxModule) else "torch"
    return Compiled(name, run)


def select_backend(
    model: ModelHandle, module: torch.nn.Module, target: Target, wanted: str,
    example: torch.Tensor, reference: torch.Tensor,
) -> Selection:
    """The fastest candidate that converts and matches ``reference`` on ``example``.

    ``module`` is the model as loaded on the target's device (the fallback); ``reference``
    its fp32 output on ``example``. ``auto`` races the candidates that pass, once per model
    and machine (see :mod:`tilerun.backends.race`). An explicitly wanted backend that cannot
    run here at all (not installed, wrong device or precision) is an :class:`OptionError`.
    """
    start = time.perf_counter()
    if own_runtime(model, target, wanted):
        return Selection(_own_runtime(model, module, target), 0.0, time.perf_counter() - start)
    candidates, racing = _candidates(model, target, wanted)
    note("backend", choice_note(wanted, candidates, racing, target))
    passed: dict[str, tuple[Compiled, float]] = {}
    for name in candidates:
        if racing and fallback_only(name, target, passed):
            break
        try:
            passed[name] = _checked(BACKENDS[name], model, target, example, reference)
        except (ConversionError, OSError) as err:  # OSError: an unwritable cache
            if wanted != "auto":
                raise OptionError("--backend", f"{wanted} cannot run {model.name}: {err}"
                                  ) from err
            fallback = "the model as loaded" if name == candidates[-1] else "the next backend"
            warnings.warn(f"{model.name}: backend {name} not used, {err}; "
                          f"running {fallback}", BackendWarning, stacklevel=2)
            continue
        if not racing:
            break
    if not passed:
        return Selection(as_loaded(model, module, target), 0.0, time.perf_counter() - start)
    timings: dict[str, float] = {}
    if len(passed) > 1:
        timings = race({n: c for n, (c, _) in passed.items()}, full_batch(example, target.batch))
        remember(model, target, timings)
    name = min(timings, key=timings.__getitem__) if timings else next(iter(passed))
    compiled, error = passed[name]
    return Selection(compiled, error, time.perf_counter() - start, timings)


def own_runtime(model: ModelHandle, target: Target, wanted: str) -> bool:
    """Whether ``auto`` runs an ONNX model on ONNX Runtime, its own reference, unchecked."""
    return (wanted == "auto" and isinstance(model.module, OnnxModule)
            and target.device.type == "cpu" and target.precision == "fp32"
            and BACKENDS["onnxruntime"].unavailable(model, target) is None)


def _own_runtime(model: ModelHandle, module: torch.nn.Module, target: Target) -> Compiled:
    """The ONNX model's own session, as loaded (its options are the onnxruntime backend's):
    loading a second session of a large graph would cost seconds and change nothing."""
    return as_loaded(model, module, target)


def backend_candidates(model: ModelHandle, target: Target, wanted: str) -> tuple[str, ...]:
    """The backends :func:`select_backend` would try, in order, without loading any
    (``--dry-run``): the one ``wanted`` (an :class:`OptionError` where it cannot run here at
    all), or ``auto``'s installed candidates, an earlier race's winner first."""
    return _candidates(model, target, wanted)[0]


def _candidates(model: ModelHandle, target: Target, wanted: str) -> tuple[tuple[str, ...], bool]:
    """The backends to try, in order, and whether to race them (``auto``'s first run)."""
    if own_runtime(model, target, wanted):
        return ("onnxruntime",), False
    if wanted != "auto":
        reason = _unavailable(wanted, model, target)
        if reason is not None:
            raise OptionError("--backend", f"{wanted} cannot run {model.name}: {reason}")
        return (wanted,), False
    order = tuple(n for n in auto_order(model, target) if _unavailable(n, model, target) is None)
    known = remembered(model, target)
    if known in order:
        return (known, *(n for n in order if n != known)), False
    return order, True


def _unavailable(name: str, model: ModelHandle, target: Target) -> str | None:
    if name not in BACKENDS:
        return f"unknown backend; choose from {CHOICES}"
    if isinstance(model.module, OnnxModule) and name in ("torch", "compile"):
        return "an ONNX model runs on onnxruntime or openvino"
    return BACKENDS[name].unavailable(model, target)


def _checked(
    backend: Backend, model: ModelHandle, target: Target, example: torch.Tensor,
    reference: torch.Tensor,
) -> tuple[Compiled, float]:
    """Load ``backend`` and measure its relative error on ``example``; raise
    :class:`ConversionError` when it fails to run or misses the tolerance."""
    compiled = backend.load(model, target)
    n = int(example.shape[0])
    x = padded(example, target.batch) if compiled.fixed_batch else example
    try:
        with torch.inference_mode():
            got = compiled.run(x)[:n].float()
    except Exception as err:  # converted graphs fail in their runtime's own exception types
        raise ConversionError(f"it fails on the probe batch ({first_line(err)})") from err
    error = relative_error(got, reference)
    onnx = isinstance(model.module, OnnxModule)
    tolerance = (ONNX_TOLERANCE if onnx else TOLERANCE)[target.precision]
    if not error <= tolerance:
        raise ConversionError(f"its logits differ from {reference_name(model)} by {error:.2g} "
                              f"of their scale (at most {tolerance:.0e} allowed at "
                              f"{target.precision})")
    return compiled, error


def reference_name(model: ModelHandle) -> str:
    """What backends are checked against: the model as loaded, in words."""
    if isinstance(model.module, OnnxModule):
        return "ONNX Runtime fp32 (the ONNX model's own runtime)"
    return "eager torch fp32"


def relative_error(got: torch.Tensor, reference: torch.Tensor) -> float:
    """``max|got - reference| / max|reference|`` over the reference's finite values.

    ``inf`` when the shapes differ or ``got`` is non-finite anywhere the reference is not
    (or the reverse): a model that yields NaN for some input must do so on every backend.
    """
    got = got.to(reference.device)
    if got.shape != reference.shape:
        return float("inf")
    finite = torch.isfinite(reference)
    if not torch.equal(torch.isfinite(got), finite):
        return float("inf")
    if not bool(finite.any()):
        return 0.0
    scale = float(reference[finite].abs().max())
    difference = float((got[finite] - reference[finite]).abs().max())
    return difference / scale if scale > 0 else difference
