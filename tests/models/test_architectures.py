"""Architectures by name: MONAI and smp adapters, entry points, nothing by dotted path."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from tilerun.cli import main
from tilerun.errors import ModelError
from tilerun.models import ARCHITECTURES, ModelSpec, as_model, build_from_state
from tilerun.models.architectures import resolve

MONAI_ARGS = {"in_channels": 3, "out_channels": 2, "channels": [4, 8, 16], "strides": [2, 2]}


def _monai_unet() -> torch.nn.Module:
    nets = pytest.importorskip("monai.networks.nets")
    torch.manual_seed(0)
    return nets.UNet(spatial_dims=2, **MONAI_ARGS).eval()


def test_a_monai_state_dict_packed_by_name_is_the_module_passed_in_python(tmp_path):
    from safetensors.torch import save_file

    module = _monai_unet()
    state = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(state))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"architecture": "monai.UNet", "arguments": MONAI_ARGS,
                                "mean": [0.5] * 3, "std": [0.25] * 3,
                                "class_names": ["a", "b"]}))
    out = tmp_path / "m.safetensors"
    result = CliRunner().invoke(main, ["model", "pack", str(state), "--spec", str(spec),
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    packed = as_model(out)
    direct = as_model(module, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert packed.spec.architecture == "monai.UNet" and packed.spec.bands == 3
    assert packed.downsampling == 4  # the product of MONAI's strides, not an assumed 32
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(packed.module(x), direct.module(x))


def test_monai_names_resolve_to_2d_networks():
    pytest.importorskip("monai")
    net = resolve("monai.BasicUNet", ARCHITECTURES, "spec")(in_channels=3, out_channels=2,
                                                            features=(4, 4, 8, 8, 16, 4))
    assert net.downsampling == 16
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 2, 32, 32)


@pytest.mark.parametrize("name", ["os.system", "torch.nn.Module", "smp.__class__",
                                  "monai.networks.nets.UNet", "monai.Sequential"])
def test_no_arbitrary_dotted_path_is_imported(name):
    with pytest.raises(ModelError) as caught:
        resolve(name, ARCHITECTURES, "spec.json")
    assert "architecture" in str(caught.value)


def test_weights_that_do_not_fit_are_one_line():
    module = _monai_unet()
    spec = ModelSpec(architecture="monai.UNet", arguments={**MONAI_ARGS, "in_channels": 4})
    with pytest.raises(ModelError, match=r"weights do not fit monai\.UNet"):
        build_from_state(module.state_dict(), spec, "w.safetensors")


def test_an_installed_package_registers_architectures_through_entry_points(monkeypatch):
    from tilerun.models import architectures

    class Point:
        name = "acme.net"

        @staticmethod
        def load():
            return lambda **kw: torch.nn.Conv2d(3, kw["classes"], 1)

    monkeypatch.setattr(architectures, "entry_points", lambda group: [Point()]
                        if group == architectures.ENTRY_POINT_GROUP else [])
    builder = resolve("acme.net", ARCHITECTURES, "spec")
    assert builder(classes=5).out_channels == 5
    with pytest.raises(ModelError, match=r"entry-point group 'tilerun\.architectures'"):
        resolve("acme.other", ARCHITECTURES, "spec")


def test_smp_adapter_packs_a_state_dict_by_name(tmp_path):
    """Runs where segmentation_models_pytorch imports: the second CI environment
    (.ci/smp-env: torch 2.14.1 + torchvision 0.29.1 + smp), not the main one."""
    smp = pytest.importorskip("segmentation_models_pytorch")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    module = smp.Unet("resnet18", encoder_weights=None, in_channels=4, classes=3).eval()
    state = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(state))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"architecture": "smp.Unet", "arguments": {
        "encoder_name": "resnet18", "in_channels": 4, "classes": 3},
        "mean": [0.0] * 4, "std": [1.0] * 4}))
    out = tmp_path / "m.safetensors"
    result = CliRunner().invoke(main, ["model", "pack", str(state), "--spec", str(spec),
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    packed = as_model(out)
    assert packed.downsampling == 32 and packed.spec.bands == 4
    x = torch.randn(1, 4, 64, 64)
    with torch.inference_mode():
        assert torch.equal(packed.module(x), module(x))
    with pytest.raises(ModelError, match=r"encoder_weights must be null"):
        resolve("smp.Unet", ARCHITECTURES, "s")(encoder_name="resnet18",
                                                encoder_weights="imagenet")


def test_smp_missing_is_one_line_that_says_what_to_install():
    try:
        import segmentation_models_pytorch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("segmentation_models_pytorch is installed here")
    with pytest.raises(ModelError, match="pip install segmentation-models-pytorch"):
        resolve("smp.Unet", ARCHITECTURES, "spec.json")
