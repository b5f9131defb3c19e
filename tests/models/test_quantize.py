"""INT8 quantisation through ONNX Runtime: QDQ/dynamic models that keep the spec, an agreement
that matches an independent comparison, and a threshold below which nothing is written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

import tilerun
from tilerun.cli import main
from tilerun.engine.quantize import quantize_model
from tilerun.errors import ModelError, OptionError, OutputExistsError
from tilerun.models import build_unet, load_model, save_package
from tilerun.models.calibration import calibration_windows
from tilerun.models.onnx_runtime import DOWNSAMPLING_KEY, SPEC_KEY
from tilerun.models.quantize import REPORT_KEY, QuantizeReport
from tilerun.sample import write_scene

TILE = 64
CLASSES = ("water", "field", "forest", "town")
#: Tolerant enough for a random-weight net, whose class margins are tiny (a trained net's are not).
LOW = 0.9


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 256² scene, a 4-class U-Net package (random weights, head bias zeroed so every pixel
    is not the same class) and its fp32 ONNX export."""
    from tilerun.models.export import export_model

    root = tmp_path_factory.mktemp("quantize")
    write_scene(root / "scene.tif", 256, 256, seed=1)
    torch.manual_seed(3)
    unet = build_unet("unet", in_channels=3, classes=4, base=8, depth=2).eval()
    with torch.no_grad():
        unet.head.bias.zero_()
    package = root / "unet.safetensors"
    save_package(unet, package, mean=(127.5,) * 3, std=(64.0,) * 3, class_names=CLASSES)
    fp32 = root / "fp32.onnx"
    export_model(package, fp32, format="onnx", tile=TILE)
    return {"scene": root / "scene.tif", "package": package, "fp32": fp32, "root": root}


@pytest.fixture(scope="module")
def static(files: dict[str, Path]) -> tuple[QuantizeReport, Path]:
    out = files["root"] / "static.onnx"
    report = quantize_model(files["fp32"], out, files["scene"], tile=TILE, min_agreement=LOW)
    return report, out


def _props(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _labels(model: Path, scene: Path, out: Path) -> np.ndarray:
    ds = tilerun.predict(str(scene), str(model), out, tile=TILE, output=["labels"],
                         pixel_size_tolerance=float("inf"), backend="onnxruntime")
    return np.asarray(ds.labels.values)


def test_static_writes_a_qdq_model_that_keeps_the_spec(static, files):
    report, out = static
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    props, source = _props(out), _props(files["fp32"])
    assert props[SPEC_KEY] == source[SPEC_KEY] and props[DOWNSAMPLING_KEY] == "4"
    module, spec = load_model(out)
    assert spec == load_model(files["package"])[1] and spec.class_names == CLASSES
    assert module.downsampling == 4
    stored = json.loads(props[REPORT_KEY])
    assert stored["agreement"] == report.agreement and stored["method"] == "static"
    assert report.int8_bytes == out.stat().st_size == stored["int8_bytes"]
    assert report.fp32_bytes == files["fp32"].stat().st_size > report.int8_bytes
    assert report.tiles == 16 and report.pixels == 256 * 256  # 4 × 4 tiles of 64² fit


def test_agreement_and_iou_match_an_independent_comparison(static, files, tmp_path):
    report, out = static
    fp32 = _labels(files["fp32"], files["scene"], tmp_path / "fp32.zarr")
    int8 = _labels(out, files["scene"], tmp_path / "int8.zarr")
    assert fp32.shape == (256, 256) and not (fp32 == 255).any()
    agreement = float((fp32 == int8).mean())
    assert report.agreement == pytest.approx(agreement, abs=1e-12)
    assert LOW <= report.agreement < 1.0  # INT8 moves a few near-tie pixels
    assert list(report.iou) == list(CLASSES)
    for c, name in enumerate(CLASSES):
        union = ((fp32 == c) | (int8 == c)).sum()
        expected = ((fp32 == c) & (int8 == c)).sum() / union if union else math.nan
        assert report.iou[name] == pytest.approx(expected, nan_ok=True)


def test_iou_is_bounded_and_consistent_with_agreement(static):
    report, _ = static
    values = list(report.iou.values())
    present = [v for v in values if not math.isnan(v)]
    assert all(0.0 <= v <= 1.0 for v in present) and len(present) >= 2
    assert any(math.isnan(v) for v in values)  # this random net never predicts one class
    # Σ hits ≥ t Σ unions = t (2N − Σ hits) for t = min IoU, and the converse for the max:
    low, high = min(present), max(present)
    assert 2 * low / (1 + low) <= report.agreement <= 2 * high / (1 + high)


def test_calibration_windows_are_spread_inside_the_scene():
    windows = calibration_windows((3, 256, 300), 64, 32)
    assert len(windows) == 16 and len(set(windows)) == 16
    assert all(w.y >= 0 and w.x >= 0 and w.bottom <= 256 and w.right <= 300 for w in windows)
    assert max(w.right for w in windows) == 300 and max(w.bottom for w in windows) == 256
    assert calibration_windows((3, 256, 300), 64, 32) == windows  # deterministic
    assert len(calibration_windows((3, 256, 256), 64, 5)) == 5
    assert len(calibration_windows((3, 64, 64), 64, 32)) == 1


def test_below_min_agreement_nothing_is_written_unless_forced(static, files, tmp_path):
    reached = static[0].agreement
    assert reached < 1.0
    out = tmp_path / "strict.onnx"
    with pytest.raises(ModelError, match=r"agreement 0\.9\d+ is below --min-agreement 1 .*--force"):
        quantize_model(files["fp32"], out, files["scene"], tile=TILE, min_agreement=1.0)
    assert list(tmp_path.iterdir()) == []  # no output, no temporary left behind
    report = quantize_model(files["fp32"], out, files["scene"], tile=TILE, min_agreement=1.0,
                            force=True)
    assert out.is_file() and report.agreement == pytest.approx(reached)
    assert json.loads(_props(out)[REPORT_KEY])["agreement"] == report.agreement


@pytest.mark.parametrize(("option", "value", "flag"), [
    ("min_agreement", 1.01, "--min-agreement"),
    ("calibration_tiles", 0, "--calibration-tiles"),
    ("method", "int4", "--method"),
    ("tile", 512, "--tile"),  # does not fit the 256² scene
])
def test_bad_options_are_refused(files, tmp_path, option, value, flag):
    with pytest.raises(OptionError, match=flag):
        quantize_model(files["fp32"], tmp_path / "q.onnx", files["scene"], **{option: value})
    assert not (tmp_path / "q.onnx").exists()


def test_existing_output_is_refused_before_any_work(files, tmp_path):
    out = tmp_path / "q.onnx"
    out.write_bytes(b"keep")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        quantize_model(files["package"], out, files["scene"])
    assert out.read_bytes() == b"keep"


def test_dynamic_quantisation(files, tmp_path):
    out = tmp_path / "dynamic.onnx"
    report = quantize_model(files["fp32"], out, files["scene"], method="dynamic", tile=TILE,
                            min_agreement=LOW)
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert "DynamicQuantizeLinear" in ops and "QuantizeLinear" not in ops
    assert report.method == "dynamic" and report.tiles == 0 and report.agreement >= LOW
    assert load_model(out)[1].class_names == CLASSES


def test_cli_quantizes_a_package(files, tmp_path):
    out = tmp_path / "q.onnx"
    result = CliRunner().invoke(main, [
        "model", "quantize", str(files["package"]), "-o", str(out), "--calibrate",
        str(files["scene"]), "--tile", str(TILE), "--calibration-tiles", "4",
        "--min-agreement", str(LOW),
    ])
    assert result.exit_code == 0, result.output
    assert "label agreement 0.9" in result.output and "IoU town" in result.output
    assert json.loads(_props(out)[REPORT_KEY])["tiles"] == 4


def test_cli_refuses_an_existing_output(files, tmp_path):
    out = tmp_path / "q.onnx"
    out.write_bytes(b"keep")
    result = CliRunner().invoke(main, [
        "model", "quantize", str(files["fp32"]), "-o", str(out), "--calibrate",
        str(files["scene"]),
    ])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert str(out) in result.stderr and out.read_bytes() == b"keep"
