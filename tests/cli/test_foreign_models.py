"""A foreign model from the command line: --spec, model pack/inspect, fixed sizes, honest
backends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from click.testing import CliRunner

from tilerun.backends import BACKENDS, Compiled
from tilerun.backends.base import Backend
from tilerun.cli import main
from tilerun.models import as_model, build_unet

try:
    from tests.models.test_onnx_geometry import raw_onnx
except ImportError:
    from models.test_onnx_geometry import raw_onnx  # type: ignore[no-redef]

SPEC = {"mean": [127.5] * 3, "std": [64.0] * 3, "class_names": ["sea", "land"]}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("foreign")
    scene = root / "scene.tif"
    assert CliRunner().invoke(main, ["sample", str(scene), "--size", "80"]).exit_code == 0
    torch.manual_seed(0)
    unet = build_unet("unet", in_channels=3, classes=2, base=4, depth=2).eval()
    spec = root / "spec.json"
    spec.write_text(json.dumps(SPEC))
    return {"scene": scene, "fixed": raw_onnx(root / "fixed.onnx", unet),
            "dynamic": raw_onnx(root / "dyn.onnx", unet, dynamic=True), "spec": spec}


def _predict(files, out: Path, model: str, *extra: str):
    return CliRunner().invoke(main, ["predict", str(files["scene"]), "-o", str(out), "--model",
                                     model, "--chunk", "64", "--quiet", *extra])


def _warnings(result) -> list[str]:
    """The spec warnings (a drift warning may come too: the model is untrained)."""
    return [line for line in result.stderr.splitlines()
            if line.startswith("warning:") and "normalisation" in line]


def test_a_raw_onnx_runs_with_one_warning_that_says_how_to_add_a_spec(files, tmp_path):
    result = _predict(files, tmp_path / "o.zarr", str(files["fixed"]))
    assert result.exit_code == 0, result.output
    [warning] = _warnings(result)
    assert "no input normalisation" in warning and "no class names" in warning
    assert "--spec SPEC.json" in warning and "tilerun model inspect" in warning


def test_spec_on_the_command_line_equals_the_spec_packed_into_the_onnx(files, tmp_path):
    given = _predict(files, tmp_path / "given.zarr", str(files["fixed"]), "--spec",
                     str(files["spec"]))
    assert given.exit_code == 0, given.output
    assert _warnings(given) == []
    packed = tmp_path / "packed.onnx"
    result = CliRunner().invoke(main, ["model", "pack", str(files["fixed"]), "--spec",
                                       str(files["spec"]), "-o", str(packed)])
    assert result.exit_code == 0, result.output
    assert "pickle" not in result.output and "(onnx," in result.output
    handle = as_model(packed)
    assert handle.spec.class_names == ("sea", "land") and handle.downsampling == 4
    ran = _predict(files, tmp_path / "packed.zarr", str(packed))
    assert ran.exit_code == 0 and _warnings(ran) == []
    a = zarr.open_group(str(tmp_path / "given.zarr"))["logits"][:]
    b = zarr.open_group(str(tmp_path / "packed.zarr"))["logits"][:]
    assert np.array_equal(a, b)


def test_a_fixed_size_onnx_takes_its_tile_and_refuses_another_in_one_line(files, tmp_path):
    plan = _predict(files, tmp_path / "o.zarr", str(files["fixed"]), "--dry-run", "--json",
                    "--spec", str(files["spec"]))
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)["tile"] == 32
    out = tmp_path / "refused.zarr"
    result = _predict(files, out, str(files["fixed"]), "--tile", "64")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --tile: 64 px: {files['fixed']} only takes 32 × 32 px inputs (its input size "
        "is fixed); leave --tile out"]
    assert not out.exists()


def test_the_plan_says_how_the_overlap_was_rounded(files, tmp_path):
    result = _predict(files, tmp_path / "o.zarr", str(files["dynamic"]), "--spec",
                      str(files["spec"]), "--tile", "32", "--overlap", "0.2", "--dry-run")
    assert result.exit_code == 0, result.output
    assert ("overlap 0.2 of the 32 px tile rounded to 8 px, a multiple of the model's "
            "downsampling factor 4") in result.stdout
    assert ("backend  auto: onnxruntime, the ONNX model's own runtime (nothing to convert or "
            "check)") in result.stdout


def test_inspect_prints_the_geometry_and_a_template(files, tmp_path):
    result = CliRunner().invoke(main, ["model", "inspect", str(files["fixed"])])
    assert result.exit_code == 0, result.output
    assert "fixed 32 × 32 px" in result.stdout and "4 (from the graph)" in result.stdout
    template = json.loads(result.stdout[result.stdout.index("{"):])
    assert template["bands"] == 3 and template["tile"] == 32 and template["mean"] is None
    spec = tmp_path / "filled.json"
    spec.write_text(json.dumps({**template, "mean": [0.0] * 3, "std": [1.0] * 3}))
    assert _predict(files, tmp_path / "o.zarr", str(files["fixed"]), "--spec",
                    str(spec)).exit_code == 0


@pytest.mark.parametrize("suffix, text", [
    (".json", '{"mean": [1, 2, 3], "std": [1, 1, 1], "means": [0], "clases": []}'),
    (".toml", 'mean = [1, 2, 3]\nstd = [1, 1, 1]\nmeans = [0]\nclases = []\n'),
])
def test_unknown_spec_keys_are_an_error_that_names_them(files, tmp_path, suffix, text):
    spec = tmp_path / f"spec{suffix}"
    spec.write_text(text)
    out = tmp_path / "o.zarr"
    result = _predict(files, out, str(files["fixed"]), "--spec", str(spec))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {spec}: unknown spec keys ['clases', 'means']"
    assert not out.exists()


def test_a_toml_spec_is_read(files, tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('mean = [127.5, 127.5, 127.5]\nstd = [64.0, 64.0, 64.0]\n'
                    'class_names = ["sea", "land"]\n')
    result = _predict(files, tmp_path / "o.zarr", str(files["fixed"]), "--spec", str(spec))
    assert result.exit_code == 0 and _warnings(result) == []


class Failing(Backend):
    name = "openvino"

    def load(self, model: object, target: object) -> Compiled:
        raise OSError("disk full")


def test_a_backend_asked_for_runs_or_exits_2_saying_why(files, tmp_path, monkeypatch):
    monkeypatch.setitem(BACKENDS, "openvino", Failing())
    out = tmp_path / "o.zarr"
    result = _predict(files, out, str(files["dynamic"]), "--spec", str(files["spec"]),
                      "--tile", "32", "--backend", "openvino")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --backend: openvino cannot run {files['dynamic']}: disk full"]
    assert not out.exists()


def test_openvino_asked_for_runs_openvino_checked_against_onnxruntime(files, tmp_path):
    pytest.importorskip("openvino")
    out = tmp_path / "o.zarr"
    result = CliRunner().invoke(main, [
        "predict", str(files["scene"]), "-o", str(out), "--model", str(files["dynamic"]),
        "--spec", str(files["spec"]), "--tile", "32", "--chunk", "64", "--backend", "openvino",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "on cpu (openvino)" in result.stdout


def test_inspect_a_bare_state_dict_asks_for_its_architecture(tmp_path):
    from safetensors.torch import save_file

    unet = build_unet("unet", in_channels=3, classes=2, base=4, depth=2)
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    result = CliRunner().invoke(main, ["model", "inspect", str(tmp_path / "w.safetensors"),
                                       "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["spec"] is None and found["template"]["architecture"] is None
    assert found["facts"]["tensors"] == len(unet.state_dict())
