"""``tilerun predict --backend``: the backend is named in the summary, refusals are one line,
and a fallback is one warning line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tilerun.backends import BACKENDS, Compiled
from tilerun.backends.base import Backend

try:
    from tests.conftest import predict_cli, scene_and_package
except ImportError:
    from conftest import predict_cli, scene_and_package  # type: ignore[no-redef]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return scene_and_package(tmp_path_factory.mktemp("cli-backend"))


def _predict(files: dict[str, Path], out: Path, *extra: str):
    return predict_cli(files, out, *extra)


@pytest.mark.parametrize("backend, shown", [("auto", ("onnxruntime", "openvino", "torch")),
                                            ("torch", ("torch",)), ("openvino", ("openvino",))])
def test_the_summary_names_the_backend(files, tmp_path, backend, shown):
    result = _predict(files, tmp_path / "o.zarr", "--backend", backend)
    assert result.exit_code == 0, (result.output, result.exception)
    assert any(f"on cpu ({name})" in result.output for name in shown), result.output


def test_a_backend_that_cannot_run_is_a_one_line_error(files, tmp_path):
    out = tmp_path / "o.zarr"
    result = _predict(files, out, "--backend", "onnxruntime", "--precision", "bf16")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --backend: onnxruntime cannot run "
        f"{files['package']}: it does not run bf16"
    ]
    assert not out.exists()


class Failing(Backend):
    name = "openvino"

    def load(self, model: object, target: object) -> Compiled:
        raise OSError("disk full")


def test_a_backend_asked_for_that_fails_exits_2_and_runs_nothing_else(files, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setitem(BACKENDS, "openvino", Failing())
    out = tmp_path / "o.zarr"
    result = _predict(files, out, "--backend", "openvino")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: --backend: openvino cannot run {files['package']}: disk full"]
    assert not out.exists()


def test_an_auto_fallback_is_one_warning_line(files, tmp_path, monkeypatch):
    monkeypatch.setitem(BACKENDS, "openvino", Failing())
    result = _predict(files, tmp_path / "o.zarr", "--backend", "auto")
    assert result.exit_code == 0, (result.output, result.exception)
    warnings = [line for line in result.output.splitlines() if "openvino" in line
                and line.startswith("warning:")]
    assert warnings in ([], [f"warning: {files['package']}: backend openvino not used, disk "
                             "full; running the next backend"])  # [] once a race is remembered
