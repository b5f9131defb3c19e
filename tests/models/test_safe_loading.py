"""Loading never runs code from a file unasked; pickled state dicts load only as weights.

Also the attention-gated U-Net (``tilerun.models.attention``): shapes, packaging, gates.
"""

from __future__ import annotations

import io
import json
import pathlib
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

import tilerun
from tilerun.errors import ModelError
from tilerun.models import (
    ARCHITECTURES,
    ModelSpec,
    UNet,
    as_model,
    build_unet,
    load_model,
    load_package,
    read_spec,
    save_package,
)
from tilerun.models.attention import AttentionGate, AttentionUNet, build_attention_unet
from tilerun.models.loading import SPEC_FILE, model_format

ARGUMENTS = {"in_channels": 3, "classes": 3, "base": 4, "depth": 2}


class Payload:
    """Unpickling this touches ``marker``: a stand-in for arbitrary code in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _write_payload(path: Path, marker: Path, writer: str) -> None:
    weights = {"head.weight": torch.zeros(3, 4, 1, 1)}
    obj = {"state_dict": weights, "callback": Payload(marker)}
    if writer == "torch.save":
        torch.save(obj, path)
    elif writer == "torch.save-legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        with path.open("wb") as f:
            pickle.dump(obj, f, protocol=2)


def test_payload_really_runs_code_when_unpickled(tmp_path):
    """Guard for the tests below: plain unpickling of the crafted file does touch the marker."""
    marker = tmp_path / "ran"
    _write_payload(tmp_path / "evil.pkl", marker, "pickle")
    with (tmp_path / "evil.pkl").open("rb") as f:
        pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize("writer", ["torch.save", "torch.save-legacy", "pickle"])
@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".bin"])
def test_code_in_a_pickle_never_runs(tmp_path, writer, suffix):
    marker = tmp_path / "ran"
    path = tmp_path / f"evil{suffix}"
    _write_payload(path, marker, writer)
    assert model_format(path) == "pickle"
    spec = ModelSpec(architecture="unet", arguments=ARGUMENTS)

    with pytest.raises(ModelError) as refused:
        load_model(path, spec=spec)
    message = str(refused.value)
    assert "tilerun model pack" in message and "--allow-pickle" in message
    assert "\n" not in message
    assert not marker.exists()

    with pytest.raises(ModelError, match="refused by the weights-only unpickler"):
        load_model(path, allow_pickle=True, spec=spec)
    assert not marker.exists()

    with pytest.raises(ModelError, match="--allow-pickle"):  # the engine's entry point too
        tilerun.predict(torch.zeros(3, 8, 8).numpy(), str(path), tmp_path / "o.zarr")
    assert not marker.exists() and not (tmp_path / "o.zarr").exists()


def _small_unet() -> UNet:
    torch.manual_seed(0)
    return build_unet("unet", **ARGUMENTS).eval()


@pytest.mark.parametrize("lightning", [False, True])
def test_pickled_state_dict_loads_with_allow_pickle_and_a_spec(tmp_path, lightning):
    unet = _small_unet()
    path = tmp_path / "state.ckpt"
    state = unet.state_dict()
    torch.save({"state_dict": state, "epoch": 3, "global_step": 10} if lightning else state, path)
    assert model_format(path) == "pickle"
    spec = ModelSpec(architecture="unet", arguments=ARGUMENTS, mean=(0, 0, 0), std=(1, 1, 1))
    module, loaded = load_model(path, allow_pickle=True, spec=spec)
    assert loaded == spec and isinstance(module, UNet) and not module.training
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(module(x), unet(x))
    with pytest.raises(ModelError, match="needs a spec naming a tilerun architecture"):
        load_model(path, allow_pickle=True)
    with pytest.raises(ModelError, match="unknown architecture 'resnet'"):
        load_model(path, allow_pickle=True, spec=ModelSpec(architecture="resnet"))
    with pytest.raises(ModelError, match="weights do not fit unet"):
        load_model(path, allow_pickle=True,
                   spec=ModelSpec(architecture="unet", arguments={**ARGUMENTS, "base": 8}))
    with pytest.raises(ModelError, match="--allow-pickle"):
        load_model(path, spec=spec)
    torch.save([unet.head.weight], path)
    with pytest.raises(ModelError, match="not a state dict"):
        load_model(path, allow_pickle=True, spec=spec)


def test_model_format_reads_the_content_not_the_name(tmp_path):
    unet = _small_unet()
    package = tmp_path / "model.bin"  # a package under a misleading name
    save_package(unet, package)
    assert model_format(package) == "safetensors"

    script = tmp_path / "model.safetensors"
    with warnings.catch_warnings():  # TorchScript is deprecated; tracing warns about the crops
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(unet, torch.zeros(1, 3, 16, 16)), str(script))
    assert model_format(script) == "torchscript"

    conv = nn.Conv2d(3, 2, 1).eval()
    program = torch.export.export(conv, (torch.zeros(2, 3, 4, 4),))
    exported = tmp_path / "model.pt2"
    torch.export.save(program, str(exported))
    assert model_format(exported) == "export"

    zipped, legacy, plain = tmp_path / "a.safetensors", tmp_path / "b.pt", tmp_path / "c.pth"
    torch.save(unet.state_dict(), zipped)
    torch.save(unet.state_dict(), legacy, _use_new_zipfile_serialization=False)
    with plain.open("wb") as f:
        pickle.dump({"w": [1.0, 2.0]}, f)
    for path in (zipped, legacy, plain):
        assert model_format(path) == "pickle", path
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 3)
    assert model_format(junk) == "pickle"
    with pytest.raises(ModelError, match="no such model file"):
        load_model(tmp_path / "missing.pt")


def test_torchscript_and_export_specs_ride_along(tmp_path):
    conv = nn.Conv2d(3, 2, 1).eval()
    spec = ModelSpec(bands=3, class_names=("land", "water"), tile=128)
    program = torch.export.export(conv, (torch.zeros(2, 3, 4, 4),))
    path = tmp_path / "m.pt2"
    torch.export.save(program, str(path), extra_files={SPEC_FILE: spec.to_json()})
    assert load_model(path)[1] == spec
    override = ModelSpec(bands=3)
    assert load_model(path, spec=override)[1] == override
    bad = tmp_path / "bad.pt2"
    torch.export.save(program, str(bad), extra_files={SPEC_FILE: json.dumps({"colour": 1})})
    with pytest.raises(ModelError, match="unknown spec keys"):
        load_model(bad)


def test_crafted_export_archive_runs_no_code(tmp_path):
    conv = nn.Conv2d(3, 2, 1).eval()
    clean, evil, marker = tmp_path / "clean.pt2", tmp_path / "evil.pt2", tmp_path / "ran"
    torch.export.save(torch.export.export(conv, (torch.zeros(2, 3, 4, 4),)), str(clean))
    buffer = io.BytesIO()
    torch.save(Payload(marker), buffer)
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(evil, "w") as dst:
        config_name = next(n for n in src.namelist() if n.endswith("model_weights_config.json"))
        config = json.loads(src.read(config_name))
        first = next(iter(config["config"].values()))
        first["use_pickle"] = True  # the first weight is now "a pickle": the payload
        weight = f"{config_name.rsplit('/', 1)[0]}/{first['path_name']}"
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == config_name:
                data = json.dumps(config).encode()
            elif info.filename == weight:
                data = buffer.getvalue()
            dst.writestr(info, data)
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do, as long as no code ran
        load_model(evil)
    assert not marker.exists()


# -- the attention-gated U-Net ---------------------------------------------------------------


def _attention(**overrides: object) -> AttentionUNet:
    torch.manual_seed(0)
    return build_attention_unet(**{**ARGUMENTS, **overrides}).eval()


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_attention_unet_shapes(depth, upsampling):
    model = _attention(depth=depth, upsampling=upsampling, in_channels=5, classes=4)
    assert model.downsampling == 2**depth and model.border == 0
    assert model.architecture == "attention-unet" and len(model.gates()) == depth
    with torch.inference_mode():
        assert model(torch.randn(2, 5, 48, 40)).shape == (2, 4, 48, 40)


def test_attention_unet_with_valid_convolutions_has_the_unet_border():
    model = _attention(padding="valid", in_channels=1)
    assert model.border == build_unet("unet", **ARGUMENTS, padding="valid").border == 20
    with torch.inference_mode():
        assert model(torch.randn(1, 1, 100, 100)).shape == (1, 3, 60, 60)


def test_attention_unet_is_registered_and_packages(tmp_path):
    assert "attention-unet" in ARCHITECTURES
    model = _attention(batch_norm=False)
    path = tmp_path / "att.safetensors"
    spec = save_package(model, path, class_names=("a", "b", "c"))
    assert read_spec(path) == spec
    assert spec.architecture == "attention-unet" and spec.arguments == model.config.to_dict()
    loaded, loaded_spec = load_package(path)
    assert isinstance(loaded, AttentionUNet) and loaded_spec == spec
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))
    handle = as_model(path)
    assert handle.downsampling == 4 and handle.in_channels == 3


def test_attention_unet_runs_in_the_engine(tmp_path):
    path = tmp_path / "att.safetensors"
    save_package(_attention(), path)
    image = torch.randn(3, 50, 70).numpy()
    ds = tilerun.predict(image, str(path), tmp_path / "o.zarr", tile=32, overlap=8)
    assert ds.logits.shape == (3, 50, 70)


def test_gates_are_the_only_difference_from_a_unet():
    """With the gates wide open (α = 1) the network is the U-Net with the same weights."""
    unet, model = _small_unet(), _attention()
    missing, unexpected = model.load_state_dict(unet.state_dict(), strict=False)
    assert not unexpected and missing and all(".gate." in key for key in missing)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        gated = model(x)
        assert not torch.allclose(gated, unet(x), atol=1e-3)  # the gates do change the output
        for gate in model.gates():
            conv = gate.psi[0]
            assert isinstance(conv, nn.Conv2d)
            conv.weight.zero_()
            conv.bias.fill_(100.0)  # σ(100) is 1 in float32
        assert torch.equal(model(x), unet(x))


def test_gate_coefficients_lie_in_0_1_and_depend_on_the_input():
    model = _attention(depth=3)
    seen: list[torch.Tensor] = []

    def keep(_: nn.Module, __: object, alpha: torch.Tensor) -> None:
        seen.append(alpha)

    hooks = [gate.psi.register_forward_hook(keep) for gate in model.gates()]
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(1, 3, 64, 64, generator=g), torch.randn(1, 3, 64, 64, generator=g) * 3
    with torch.inference_mode():
        model(a)
        model(b)
    for hook in hooks:
        hook.remove()
    assert [tuple(alpha.shape) for alpha in seen[:3]] == [(1, 1, 8, 8), (1, 1, 16, 16),
                                                          (1, 1, 32, 32)]
    for alpha_a, alpha_b in zip(seen[:3], seen[3:], strict=True):
        assert float(alpha_a.min()) > 0.0 and float(alpha_a.max()) < 1.0
        assert float(alpha_a.std()) > 0  # varies over the image
        assert not torch.allclose(alpha_a, alpha_b)  # and with the input

    gate = model.gates()[-1]
    skip, signal = torch.randn(1, 4, 32, 32), torch.randn(1, 8, 16, 16)
    with torch.inference_mode():
        alpha = gate.coefficients(skip, signal)
        assert alpha.shape == (1, 1, 32, 32)
        assert torch.allclose(gate(skip, signal), skip * alpha)
    assert isinstance(gate, AttentionGate)
