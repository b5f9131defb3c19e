"""``tilerun model info`` and ``tilerun model pack``, pickles refused unless asked."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner

from tilerun.cli import main
from tilerun.models import build_unet, load_package, read_spec, save_package


def _unet():
    torch.manual_seed(0)
    return build_unet("unet", in_channels=3, classes=2, base=4, depth=2).eval()


def test_info_prints_the_spec(tmp_path):
    path = tmp_path / "m.safetensors"
    save_package(_unet(), path, class_names=("sea", "land"), pixel_size=10.0, pixel_unit="m")
    result = CliRunner().invoke(main, ["model", "info", str(path)])
    assert result.exit_code == 0, result.output
    assert "unet" in result.output and "('sea', 'land')" in result.output
    result = CliRunner().invoke(main, ["model", "info", str(path), "--json"])
    assert json.loads(result.output)["pixel_size"] == 10.0


def test_pack_from_pickled_state_dict_needs_opt_in(tmp_path):
    unet = _unet()
    ckpt = tmp_path / "model.pth"
    torch.save({"state_dict": unet.state_dict()}, ckpt)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"architecture": "unet", "arguments": unet.config.to_dict(),
                                "class_names": ["a", "b"]}))
    out = tmp_path / "m.safetensors"
    refused = CliRunner().invoke(main, ["model", "pack", str(ckpt), "--spec", str(spec),
                                        "-o", str(out)])
    assert refused.exit_code == 2
    assert "--allow-pickle" in refused.stderr and "tilerun model pack" in refused.stderr
    assert not out.exists()
    ok = CliRunner().invoke(main, ["model", "pack", str(ckpt), "--spec", str(spec), "-o",
                                   str(out), "--allow-pickle"])
    assert ok.exit_code == 0, ok.output
    module, packed = load_package(out)
    assert packed.class_names == ("a", "b") and packed.bands == 3
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(module(x), unet(x))
    assert read_spec(out).arguments == unet.config.to_dict()


def test_predict_refuses_pickle_and_names_the_way_out(tmp_path):
    ckpt = tmp_path / "model.pt"
    torch.save(_unet().state_dict(), ckpt)
    scene = tmp_path / "s.tif"
    CliRunner().invoke(main, ["sample", str(scene), "--size", "64"])
    result = CliRunner().invoke(main, ["predict", str(scene), "--model", str(ckpt), "--quiet"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "tilerun model pack" in result.stderr


def test_export_torchscript_then_predict_matches(tmp_path):
    import numpy as np

    import tilerun

    path = tmp_path / "m.safetensors"
    save_package(_unet(), path, tile=64)
    out = tmp_path / "m.ts"
    result = CliRunner().invoke(main, ["model", "export", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    again = CliRunner().invoke(main, ["model", "export", str(path), "-o", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    image = np.random.default_rng(0).normal(size=(3, 70, 90)).astype(np.float32)
    a = tilerun.predict(image, str(path), tmp_path / "a.zarr").logits.values
    b = tilerun.predict(image, str(out), tmp_path / "b.zarr").logits.values
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_export_demo_then_info_counts_the_onnx_weights(tmp_path, monkeypatch):
    """``demo`` names the bundled model in ``model export`` as in ``model info``; an ONNX
    model's parameters are its initializers (it has no torch parameters)."""
    monkeypatch.chdir(tmp_path)  # no file called demo here
    out = tmp_path / "demo.onnx"
    result = CliRunner().invoke(main, ["model", "export", "demo", "--format", "onnx", "-o",
                                       str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    demo = CliRunner().invoke(main, ["model", "info", "demo"])
    onnx = CliRunner().invoke(main, ["model", "info", str(out)])
    assert demo.exit_code == 0 and onnx.exit_code == 0, (demo.output, onnx.output)
    assert "0.12 M parameters" in demo.output, demo.output
    assert "0.12 M parameters in ONNX initializers" in onnx.output, onnx.output
