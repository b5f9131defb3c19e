"""Exported models (TorchScript, ONNX, torch.export) reproduce their source, alone and in the
engine."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import tilerun
from tilerun.errors import ModelError, OptionError, OutputError
from tilerun.models import ModelSpec, as_model, build_unet, load_model, save_package
from tilerun.models.attention import build_attention_unet
from tilerun.models.export import export_model
from tilerun.models.loading import SPEC_FILE, model_format

TOLERANCE = 1e-4
MEAN, STD = (10.0, 20.0, 30.0), (2.0, 3.0, 4.0)
ENGINE = {"tile": 64, "overlap": 16, "scheduler": "sync"}


def _unet() -> nn.Module:
    """A small U-Net whose batch norms have non-trivial running statistics."""
    torch.manual_seed(0)
    unet = build_unet("unet", in_channels=3, classes=3, base=4, depth=2, batch_norm=True)
    g = torch.Generator().manual_seed(1)
    for layer in unet.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.copy_(torch.randn(layer.num_features, generator=g) * 0.1)
            layer.running_var.copy_(torch.rand(layer.num_features, generator=g) + 0.5)
    return unet.eval()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module, ModelSpec]:
    path = tmp_path_factory.mktemp("package") / "unet.safetensors"
    unet = _unet()
    spec = save_package(unet, path, mean=MEAN, std=STD, class_names=("a", "b", "c"))
    return path, unet, spec


@pytest.fixture(scope="module")
def engine_image() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.normal(20.0, 10.0, size=(3, 150, 170)).astype(np.float32)


@pytest.fixture(scope="module")
def package_logits(
    package: tuple[Path, nn.Module, ModelSpec],
    engine_image: np.ndarray,
    tmp_path_factory: pytest.TempPathFactory,
) -> np.ndarray:
    out = tmp_path_factory.mktemp("reference") / "o.zarr"
    return np.asarray(tilerun.predict(engine_image, str(package[0]), out, **ENGINE).logits.values)


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    assert float((a - b).abs().max()) <= TOLERANCE


# -- TorchScript -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torchscript(package: tuple[Path, nn.Module, ModelSpec], tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ts") / "unet.pt"
    export_model(package[0], out, format="torchscript", tile=64)
    return out


def test_torchscript_export_loads_and_matches(torchscript, package):
    _, unet, spec = package
    assert model_format(torchscript) == "torchscript"
    module, loaded = load_model(torchscript)
    assert loaded == spec
    x = torch.randn(2, 3, 48, 80)  # another batch and size than the trace's example
    with torch.inference_mode():
        _close(module(x), unet(x))
    handle = as_model(torchscript)
    assert handle.downsampling == 4 and handle.spec.mean == MEAN and handle.in_channels == 3


def test_engine_runs_the_torchscript_export(torchscript, engine_image, package_logits, tmp_path):
    ds = tilerun.predict(engine_image, str(torchscript), tmp_path / "o.zarr", **ENGINE)
    np.testing.assert_allclose(ds.logits.values, package_logits, rtol=0, atol=TOLERANCE)


def test_torchscript_export_of_a_module_with_a_spec(tmp_path):
    """A plain module: bands are read off its first convolution, ``downsampling`` kept."""

    class Plain(nn.Module):
        downsampling = 1

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).relu()

    plain = Plain().eval()
    spec = export_model(plain, tmp_path / "p.pt", tile=8, spec=ModelSpec(activation="sigmoid"))
    assert spec.bands == 2 and spec.activation == "sigmoid"
    handle = as_model(tmp_path / "p.pt")
    assert handle.downsampling == 1 and handle.spec == spec
    x = torch.randn(1, 2, 5, 7)
    with torch.inference_mode():
        _close(handle.module(x), plain(x))


def test_attention_unet_exports_to_torchscript(tmp_path):
    torch.manual_seed(0)
    model = build_attention_unet(in_channels=3, classes=2, base=4, depth=2).eval()
    export_model(model, tmp_path / "a.pt", tile=32)
    module, spec = load_model(tmp_path / "a.pt")
    assert spec.architecture == "attention-unet" and spec.arguments == model.config.to_dict()
    x = torch.randn(3, 3, 64, 40)
    with torch.inference_mode():
        _close(module(x), model(x))


def test_valid_padding_export_records_its_tile(tmp_path):
    """Tracing specialises the skip crops of a valid U-Net to the example's size."""
    torch.manual_seed(0)
    unet = build_unet("unet", in_channels=1, classes=2, base=4, depth=2, padding="valid").eval()
    spec = export_model(unet, tmp_path / "v.pt", tile=100)
    assert spec.border == unet.border and spec.tile == 100
    module, loaded = load_model(tmp_path / "v.pt")
    assert loaded.tile == 100 and int(module.border) == unet.border
    x = torch.randn(1, 1, 100, 100)
    with torch.inference_mode():
        _close(module(x), unet(x))


def test_export_refuses_bad_requests(package, tmp_path, monkeypatch):
    with pytest.raises(OptionError, match="choose from"):
        export_model(package[0], tmp_path / "m.x", format="tflite")
    with pytest.raises(OptionError, match="multiple of the model's downsampling factor 4"):
        export_model(package[0], tmp_path / "m.pt", tile=30)
    with pytest.raises(OutputError, match="folder does not exist"):
        export_model(package[0], tmp_path / "missing" / "m.pt")
    with pytest.raises(ModelError, match="no such model file"):
        export_model(tmp_path / "missing.safetensors", tmp_path / "m.pt")
    pickled = tmp_path / "state.pt"
    torch.save(package[1].state_dict(), pickled)
    with pytest.raises(ModelError, match="--allow-pickle"):
        export_model(pickled, tmp_path / "m.pt")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: None if name == "onnxscript" else real_find_spec(name, *a),
    )
    with pytest.raises(ModelError, match=r"needs onnxscript; they are dependencies of tilerun"):
        export_model(package[0], tmp_path / "m.onnx", format="onnx")
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "m.onnx").exists()


def test_pickled_state_dict_exports_with_allow_pickle(package, tmp_path):
    _, unet, spec = package
    pickled = tmp_path / "state.pt"
    torch.save(unet.state_dict(), pickled)
    written = export_model(pickled, tmp_path / "m.pt", tile=32, allow_pickle=True, spec=spec)
    assert written == spec
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        _close(load_model(tmp_path / "m.pt")[0](x), unet(x))


# -- ONNX ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_file(package, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "unet.onnx"
    export_model(package[0], out, format="onnx", tile=64)
    return out


def test_onnx_export_loads_and_matches(onnx_file, package):
    import onnx

    from tilerun.models.onnx_runtime import DOWNSAMPLING_KEY, SPEC_KEY, OnnxModule, load_onnx

    _, unet, spec = package
    proto = onnx.load(str(onnx_file))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert ModelSpec.from_json(metadata[SPEC_KEY]) == spec and metadata[DOWNSAMPLING_KEY] == "4"
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]  # N, C, H, W

    module, loaded = load_onnx(onnx_file)
    assert isinstance(module, OnnxModule) and loaded == spec and module.downsampling == 4
    copy = pickle.loads(pickle.dumps(module))  # e.g. for process-based schedulers
    for shape in [(1, 3, 64, 64), (3, 3, 48, 80)]:  # dynamic batch, height and width
        x = torch.randn(shape)
        with torch.inference_mode():
            _close(module(x), unet(x))
            _close(copy(x), unet(x))


def test_engine_runs_the_onnx_module(onnx_file, engine_image, package_logits, tmp_path):
    from tilerun.models.onnx_runtime import OnnxModule

    module = OnnxModule(onnx_file)
    ds = tilerun.predict(engine_image, module, tmp_path / "o.zarr", mean=MEAN, std=STD, **ENGINE)
    np.testing.assert_allclose(ds.logits.values, package_logits, rtol=0, atol=TOLERANCE)


def test_onnx_spec_can_be_replaced_and_bad_files_are_refused(onnx_file, tmp_path):
    from tilerun.models.onnx_runtime import load_onnx

    assert load_onnx(onnx_file, ModelSpec(bands=3))[1] == ModelSpec(bands=3)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="is not an ONNX model tilerun can read"):
        load_onnx(junk)
    with pytest.raises(ModelError, match="no such model file"):
        load_onnx(tmp_path / "missing.onnx")


# -- torch.export ----------------------------------------------------------------------------


def test_torch_export_program_round_trip(package, tmp_path):
    _, unet, spec = package
    auto = torch.export.Dim.AUTO
    program = torch.export.export(
        unet, (torch.randn(2, 3, 64, 64),), dynamic_shapes=({0: auto, 2: auto, 3: auto},)
    )
    path = tmp_path / "unet.pt2"
    torch.export.save(program, str(path), extra_files={SPEC_FILE: spec.to_json()})
    assert model_format(path) == "export"
    module, loaded = load_model(path)
    assert loaded == spec
    x = torch.randn(3, 3, 32, 48)
    with torch.no_grad():
        _close(module(x), unet(x))


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_embedded_normalisation_runs_once_in_the_engine(
    fmt, package, engine_image, package_logits, tmp_path
):
    """The export takes raw values; the engine, told so by the spec, does not normalise again,
    and nodata pixels still reach the network as 0 after its own normalisation."""
    out = tmp_path / f"embedded.{'pt' if fmt == 'torchscript' else 'onnx'}"
    spec = export_model(package[0], out, format=fmt, tile=64, embed_normalisation=True)
    assert spec.embedded_normalisation and spec.mean == MEAN  # still recorded, for reports
    module, loaded = load_model(out)
    assert loaded.embedded_normalisation
    raw = torch.tensor(MEAN).reshape(1, 3, 1, 1) + torch.tensor(STD).reshape(1, 3, 1, 1) * \
        torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    normalised = (raw - torch.tensor(MEAN).reshape(1, 3, 1, 1)) / \
        torch.tensor(STD).reshape(1, 3, 1, 1)
    with torch.no_grad():
        _close(module(raw), package[1](normalised))
    got = tilerun.predict(engine_image, str(out), tmp_path / "o.zarr", **ENGINE).logits.values
    np.testing.assert_allclose(got, package_logits, rtol=0, atol=1e-4)
    holes = engine_image.copy()
    holes[:, 40:60, 50:90] = np.nan
    for model, name in ((str(out), "e"), (str(package[0]), "p")):
        logits = tilerun.predict(holes, model, tmp_path / f"{name}.zarr", **ENGINE).logits.values
        if name == "e":
            embedded = logits
    np.testing.assert_allclose(embedded, logits, rtol=0, atol=1e-4)


def test_embedding_needs_a_normalisation_and_only_once(package, tmp_path):
    with pytest.raises(ModelError, match="no normalisation to embed"):
        export_model(_unet(), tmp_path / "a.pt", tile=64, embed_normalisation=True)
    once = tmp_path / "once.pt"
    export_model(package[0], once, tile=64, embed_normalisation=True)
    with pytest.raises(ModelError, match="already embedded"):
        export_model(once, tmp_path / "twice.pt", tile=64, embed_normalisation=True)
