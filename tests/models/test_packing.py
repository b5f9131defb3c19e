"""``pack_model``: a spec attached to TorchScript, torch.export and state-dict files, kept in
their format, checked on reading back; pickles only when asked."""

from __future__ import annotations

import warnings

import pytest
import torch

from tilerun.errors import ModelError, OutputError
from tilerun.models import ModelSpec, as_model, build_unet
from tilerun.models.loading import model_format
from tilerun.models.packing import pack_model

SPEC = ModelSpec(mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0), class_names=("a", "b"))


def _unet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_unet("unet", in_channels=3, classes=2, base=4, depth=2).eval()


def test_a_torchscript_archive_stays_torchscript_with_the_spec(tmp_path):
    unet = _unet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(unet, torch.zeros(1, 3, 32, 32))
    torch.jit.save(traced, str(tmp_path / "m.ts"))
    assert pack_model(tmp_path / "m.ts", SPEC, tmp_path / "packed.ts") == "torchscript"
    assert model_format(tmp_path / "packed.ts") == "torchscript"
    handle = as_model(tmp_path / "packed.ts")
    assert handle.spec.class_names == ("a", "b") and handle.spec.mean == SPEC.mean
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(handle.module(x), unet(x))


def test_a_torch_export_program_stays_a_program_with_the_spec(tmp_path):
    unet = _unet()
    program = torch.export.export(unet, (torch.randn(2, 3, 32, 32),))
    torch.export.save(program, str(tmp_path / "m.pt2"))
    assert pack_model(tmp_path / "m.pt2", SPEC, tmp_path / "packed.pt2") == "export"
    handle = as_model(tmp_path / "packed.pt2")
    assert handle.spec.std == SPEC.std
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(handle.module(x), unet(x), atol=1e-6)


def test_a_pickled_state_dict_is_refused_unless_asked(tmp_path):
    unet = _unet()
    torch.save(unet.state_dict(), tmp_path / "m.pth")
    spec = ModelSpec(architecture="unet", arguments=unet.config.to_dict(), mean=(0.0,) * 3,
                     std=(1.0,) * 3)
    out = tmp_path / "m.safetensors"
    with pytest.raises(ModelError, match="unpickling can run code"):
        pack_model(tmp_path / "m.pth", spec, out)
    assert not out.exists()
    assert pack_model(tmp_path / "m.pth", spec, out, allow_pickle=True) == "safetensors"
    assert as_model(out).spec.bands == 3


def test_a_spec_that_does_not_fit_leaves_nothing_behind(tmp_path):
    from tests.models.test_onnx_geometry import raw_onnx

    path = raw_onnx(tmp_path / "m.onnx", _unet())
    with pytest.raises(ModelError, match="the spec says 5 bands"):
        pack_model(path, ModelSpec(bands=5), tmp_path / "out.onnx")
    with pytest.raises(OutputError, match=r"suffix \.onnx"):
        pack_model(path, SPEC, tmp_path / "out.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_a_spec_given_for_a_package_keeps_its_architecture(tmp_path):
    from tilerun.models import save_package

    save_package(_unet(), tmp_path / "p.safetensors")
    handle = as_model(tmp_path / "p.safetensors", spec=SPEC)
    assert handle.spec.architecture == "unet" and handle.spec.mean == SPEC.mean
