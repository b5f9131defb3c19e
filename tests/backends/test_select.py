"""Backend selection: auto picks a fast backend only when it matches eager torch; caching;
fallbacks with one warning; precision honoured; fixed-batch padding; pickling to workers."""

from __future__ import annotations

import pickle
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import tilerun
from tilerun.backends import (
    BACKENDS,
    BackendWarning,
    Compiled,
    Target,
    auto_order,
    onnx_backends,
    relative_error,
    select_backend,
)
from tilerun.backends.base import Backend
from tilerun.engine.runner import TileRunner
from tilerun.errors import OptionError
from tilerun.models import as_model, build_unet, save_package
from tilerun.models.normalise import Normalizer
from tilerun.sample import write_scene

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test converts into its own empty cache."""
    root = tmp_path / "cache"
    monkeypatch.setenv("TILERUN_CACHE_DIR", str(root))
    return root


def small_unet(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_unet("unet", in_channels=3, classes=4, base=8, depth=2).eval()


def runner_for(module: torch.nn.Module, backend: str, precision: str = "fp32",
               batch: int = 4, tile: int = 64) -> TileRunner:
    handle = as_model(module, mean=(127.5,) * 3, std=(64.0,) * 3)
    runner = TileRunner(handle, CPU, precision, backend=backend)
    normalize = Normalizer.for_model(handle, 3, np.dtype("uint8"))
    runner.select(normalize.example(2, tile), batch)
    return runner


def eager(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return module(x).float()


def probe(batch: int = 4, tile: int = 64, seed: int = 3) -> torch.Tensor:
    return torch.randn((batch, 3, tile, tile), generator=torch.Generator().manual_seed(seed))


def test_auto_races_the_exact_candidates_once_and_matches_eager_torch() -> None:
    module = small_unet()
    runner = runner_for(module, "auto")
    first = runner.selection
    # eager torch is the fallback on a CPU, not a racer, once a converted backend passed
    assert first is not None and set(first.timings) == {"onnxruntime", "openvino"}
    assert runner.backend_used == min(first.timings, key=first.timings.__getitem__)
    x = probe()
    assert relative_error(runner.forward(x), eager(module, x)) <= 1e-4
    assert first.error <= 1e-4
    again = runner_for(module, "auto")  # remembered: no race, the same winner
    assert again.selection is not None and again.selection.timings == {}
    assert again.backend_used == runner.backend_used


class Timed(Backend):
    """Exact, and as slow as asked."""

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name  # type: ignore[misc]
        self.seconds = seconds

    def load(self, model: object, target: Target) -> Compiled:
        module = model.module  # type: ignore[attr-defined]

        def run(x: torch.Tensor) -> torch.Tensor:
            time.sleep(self.seconds)
            return module(x)

        return Compiled(self.name, run)


def test_the_race_picks_the_fastest_and_later_runs_keep_it(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setitem(BACKENDS, "onnxruntime", Timed("onnxruntime", 0.05))
    monkeypatch.setitem(BACKENDS, "openvino", Timed("openvino", 0.0))
    module = small_unet()
    runner = runner_for(module, "auto")
    assert runner.backend_used == "openvino"
    assert runner.selection is not None
    assert runner.selection.timings["onnxruntime"] >= 0.05
    winner = runner.backend_used
    monkeypatch.setitem(BACKENDS, "openvino", Timed("openvino", 0.05))
    monkeypatch.setitem(BACKENDS, "torch", Timed("torch", 0.05))
    assert runner_for(module, "auto").backend_used == winner  # remembered, not raced again


def test_eager_torch_is_checked_only_when_no_converted_backend_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded: list[str] = []

    class Counted(Timed):
        def load(self, model: object, target: Target) -> Compiled:
            loaded.append(self.name)
            return super().load(model, target)

    for name in ("onnxruntime", "openvino", "torch"):
        monkeypatch.setitem(BACKENDS, name, Counted(name, 0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runner_for(small_unet(), "auto")
    assert loaded == ["onnxruntime", "openvino"]  # torch neither loaded nor raced
    loaded.clear()
    monkeypatch.setitem(BACKENDS, "onnxruntime", Wrong())
    monkeypatch.setitem(BACKENDS, "openvino", Broken())
    with pytest.warns(BackendWarning):
        fallback = runner_for(small_unet(seed=1), "auto")
    assert fallback.backend_used == "torch" and loaded == ["torch"]


def test_the_conversion_is_cached_and_keyed_by_the_weights(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner_for(small_unet(0), "onnxruntime")
    files = sorted((cache / "backends").glob("*.onnx"))
    assert len(files) == 1

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached conversion should have been used")

    with monkeypatch.context() as patched:
        patched.setattr(onnx_backends, "_export", no_export)
        assert runner_for(small_unet(0), "onnxruntime").backend_used == "onnxruntime"
    runner_for(small_unet(1), "onnxruntime")  # other weights: another file
    runner_for(small_unet(0), "onnxruntime", tile=128)  # another tile: another file
    assert len(list((cache / "backends").glob("*.onnx"))) == 3


class Wrong(Backend):
    """Converts 'successfully' but computes something else."""

    name = "onnxruntime"

    def load(self, model: object, target: Target) -> Compiled:
        module = model.module  # type: ignore[attr-defined]
        return Compiled(self.name, lambda x: module(x) * 1.001)


def test_a_backend_that_is_not_exact_is_not_used_and_the_warning_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(BACKENDS, "onnxruntime", Wrong())
    with pytest.warns(BackendWarning,
                      match=r"onnxruntime not used, its logits differ .* 1e-04 allowed"):
        runner = runner_for(small_unet(), "auto")
    assert runner.backend_used != "onnxruntime"


class Broken(Backend):
    name = "openvino"

    def load(self, model: object, target: Target) -> Compiled:
        def fail(x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("kernel missing\nsecond line")

        return Compiled(self.name, fail)


def test_an_explicit_backend_that_fails_is_an_option_error_not_another_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(BACKENDS, "openvino", Broken())
    with pytest.raises(OptionError) as caught:
        runner_for(small_unet(), "openvino")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("--backend: openvino cannot run")
    assert "fails on the probe batch (kernel missing)" in message


def test_an_explicit_backend_that_cannot_run_here_is_an_option_error() -> None:
    with pytest.raises(OptionError, match=r"onnxruntime cannot run .* does not run bf16"):
        runner_for(small_unet(), "onnxruntime", precision="bf16")
    with pytest.raises(OptionError, match="choose from"):
        tilerun.PredictOptions(backend="tensorrt")


@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-4), ("bf16", 3e-2)])
def test_openvino_runs_the_precision_asked_for(precision: str, tolerance: float) -> None:
    module = small_unet()
    runner = runner_for(module, "openvino", precision=precision)
    assert runner.backend_used == "openvino"
    error = relative_error(runner.forward(probe()), eager(module, probe()))
    assert error <= tolerance
    if precision == "bf16":
        assert error > 1e-5  # really lowered, not fp32 in disguise
    else:
        assert error <= 1e-5  # fp32 is not lowered silently (OpenVINO's default is bf16)


def test_auto_with_bf16_prefers_openvino_and_on_cuda_only_torch() -> None:
    handle = as_model(small_unet())
    bf16 = Target(CPU, "bf16", 3, 64, 4, 2)
    assert auto_order(handle, bf16) == ("openvino", "torch")
    assert auto_order(handle, Target(torch.device("cuda"), "fp32", 3, 64, 4, 2)) == ("torch",)


def test_fixed_batch_backends_get_short_batches_padded() -> None:
    module = small_unet()
    runner = runner_for(module, "openvino", batch=4)
    assert runner._compiled.fixed_batch
    full, short = probe(4), probe(4)[:3]
    assert torch.equal(runner.forward(short), runner.forward(full)[:3])
    assert relative_error(runner.forward(short), eager(module, short)) <= 1e-4


def test_a_pickled_runner_reloads_its_backend_from_the_cache(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    module = small_unet()
    runner = runner_for(module, "auto")
    copy = pickle.loads(pickle.dumps(runner))
    assert copy.backend_used == runner.backend_used
    assert torch.equal(copy.forward(probe()), runner.forward(probe()))


def test_relative_error() -> None:
    reference = torch.tensor([[1.0, -4.0]])
    assert relative_error(reference + 0.004, reference) == pytest.approx(1e-3, rel=1e-4)
    assert relative_error(reference[:, :1], reference) == float("inf")
    assert relative_error(torch.zeros(2), torch.zeros(2)) == 0.0
    nan = torch.tensor([1.0, float("nan")])
    assert relative_error(torch.tensor([1.5, float("nan")]), nan) == pytest.approx(0.5)
    assert relative_error(torch.tensor([1.0, 2.0]), nan) == float("inf")


def test_an_onnx_model_runs_on_onnxruntime_and_refuses_torch(tmp_path: Path) -> None:
    from tilerun.models.export import export_model

    path = tmp_path / "m.onnx"
    export_model(small_unet(), path, format="onnx", tile=64, check=False,  # the slow exporter
                 spec=tilerun.models.ModelSpec(bands=3))
    handle = as_model(path)
    target = Target(CPU, "fp32", 3, 64, 4, 2)
    assert auto_order(handle, target) == ("onnxruntime", "openvino")
    example = probe()
    reference = eager(handle.module, example)
    with pytest.raises(OptionError, match="an ONNX model runs on onnxruntime or openvino"):
        select_backend(handle, handle.module, target, "torch", example, reference)
    chosen = select_backend(handle, handle.module, target, "openvino", example, reference)
    assert chosen.backend == "openvino" and chosen.error <= 1e-4


def test_run_reports_the_backend_and_its_logits_equal_the_torch_backend(tmp_path: Path) -> None:
    scene = tmp_path / "scene.tif"
    write_scene(scene, 300, 260)
    package = tmp_path / "m.safetensors"
    save_package(small_unet(), package, mean=(127.5,) * 3, std=(64.0,) * 3)
    logits = {}
    for backend in ("torch", "auto"):
        out = tmp_path / f"{backend}.zarr"
        summary = tilerun.run(scene, package, out, tilerun.PredictOptions(
            backend=backend, tile=64, chunk=128, pixel_size_tolerance=float("inf")))
        assert summary.backend in (("torch",) if backend == "torch" else
                                   ("onnxruntime", "openvino", "torch"))
        assert summary.backend_seconds > 0
        logits[backend] = xr.open_zarr(out).logits.values
    assert relative_error(torch.from_numpy(logits["auto"]), torch.from_numpy(logits["torch"])) \
        <= 1e-4


def test_compile_is_opt_in_and_exact() -> None:
    """Slow to compile (even this tiny model takes ~28 s on 2 cores), so one test covers it."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                 torch.nn.Conv2d(4, 2, 1)).eval()
    handle = as_model(module)
    assert "compile" not in auto_order(handle, Target(CPU, "fp32", 3, 32, 4, 2))
    runner = runner_for(module, "compile", batch=4, tile=32)
    assert runner.backend_used == "compile" and runner._compiled.fixed_batch
    x = probe(3, 32)
    assert relative_error(runner.forward(x), eager(module, x)) <= 1e-4


def test_the_cli_names_every_backend_in_order():
    """``tilerun.backends.names`` (what --help imports without torch) lists the backends."""
    from tilerun.backends.names import NAMES
    from tilerun.backends.select import BACKENDS

    assert tuple(BACKENDS) == NAMES
