"""ONNX geometry read from the graph: downsampling, fixed size and batch, outputs by name."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from tilerun.errors import ModelError
from tilerun.models import ModelSpec, as_model, build_unet
from tilerun.models.onnx_graph import read_geometry
from tilerun.models.onnx_runtime import OnnxModule, load_onnx


def _unet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_unet("unet", in_channels=3, classes=2, base=4, depth=2).eval()


def raw_onnx(path: Path, module: torch.nn.Module, batch: int = 2, tile: int = 32,
             dynamic: bool = False, outputs: tuple[str, ...] = ("logits",)) -> Path:
    """A plain ``torch.onnx.export`` as another project would write it: no tilerun metadata,
    fixed batch and size unless ``dynamic``."""
    axes = {"x": {0: "n", 2: "h", 3: "w"}} if dynamic else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(batch, 3, tile, tile),), str(path), dynamo=False,
                          input_names=["x"], output_names=list(outputs), dynamic_axes=axes,
                          opset_version=17)
    return path


def test_fixed_geometry_and_downsampling_are_read_from_the_graph(tmp_path):
    geometry = read_geometry(raw_onnx(tmp_path / "m.onnx", _unet()))
    assert geometry.fixed_size == (32, 32) and geometry.fixed_batch == 2
    assert geometry.channels == 3 and geometry.opset == 17
    assert (geometry.downsampling, geometry.downsampling_from) == (4, "graph")
    handle = as_model(tmp_path / "m.onnx")
    assert (handle.fixed_tile, handle.fixed_batch, handle.downsampling) == (32, 2, 4)
    assert handle.spec.bands == 3


def test_a_dynamic_graph_has_no_fixed_tile_and_its_own_factor(tmp_path):
    module = build_unet("unet", in_channels=3, classes=2, base=4, depth=3).eval()
    handle = as_model(raw_onnx(tmp_path / "d.onnx", module, dynamic=True))
    assert (handle.fixed_tile, handle.fixed_batch, handle.downsampling) == (None, None, 8)


def test_a_fixed_batch_gets_exactly_that_many_tiles_per_call(tmp_path):
    module = _unet()
    onnx = OnnxModule(raw_onnx(tmp_path / "m.onnx", module))
    seen: list[int] = []
    run = onnx.session.run

    def recording(names, feeds):
        seen.append(next(iter(feeds.values())).shape[0])
        return run(names, feeds)

    onnx.session.run = recording  # type: ignore[method-assign]
    x = torch.randn(5, 3, 32, 32)
    with torch.inference_mode():
        got, expected = onnx(x), module(x)
    assert seen == [2, 2, 2]
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-4


class TwoHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.unet = _unet()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.unet(x)
        return y.mean(dim=(2, 3)), y * 2


def test_a_multi_output_model_chooses_its_output_by_name(tmp_path):
    path = raw_onnx(tmp_path / "two.onnx", TwoHeads(), dynamic=True, outputs=("score", "seg"))
    spec = ModelSpec(output="seg")
    module, _ = load_onnx(path, spec)
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        assert module(x).shape == (1, 2, 32, 32)
    with pytest.raises(ModelError, match=r"has no output 'mask'; its outputs are \['score', "):
        load_onnx(path, ModelSpec(output="mask"))


def test_a_spec_that_contradicts_the_graph_is_one_line(tmp_path):
    path = raw_onnx(tmp_path / "m.onnx", _unet())
    with pytest.raises(ModelError, match="the spec says 4 bands but the model's input takes 3"):
        as_model(path, spec=ModelSpec(bands=4))
    with pytest.raises(ModelError, match="recommends 64 px tiles but the model only takes 32"):
        as_model(path, spec=ModelSpec(tile=64))
