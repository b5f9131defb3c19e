from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import tilerun
from tilerun.errors import ModelError
from tilerun.models import as_model, build_unet, load_package, read_spec, save_package


def test_round_trip_keeps_weights_and_spec(tmp_path):
    torch.manual_seed(0)
    unet = build_unet("unet", in_channels=4, classes=3, base=4, depth=2).eval()
    path = tmp_path / "m.safetensors"
    save_package(unet, path, mean=(1, 2, 3, 4), std=(5, 6, 7, 8), class_names=("a", "b", "c"))
    loaded, spec = load_package(path)
    assert spec.mean == (1.0, 2.0, 3.0, 4.0) and spec.class_names == ("a", "b", "c")
    x = torch.randn(1, 4, 32, 32)
    with torch.inference_mode():
        assert torch.equal(unet(x), loaded(x))
    handle = as_model(path)
    assert handle.in_channels == 4 and handle.downsampling == 4 and handle.spec.std == (5, 6, 7, 8)


def test_package_normalisation_is_applied(tmp_path):
    """The engine applies the package's mean/std: shifting input and mean together is a no-op."""
    torch.manual_seed(0)
    unet = build_unet("unet", in_channels=3, classes=2, base=4, depth=2).eval()
    img = np.random.default_rng(1).uniform(0, 200, size=(3, 40, 40)).astype(np.float32)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_package(unet, a, mean=(100, 100, 100), std=(50, 50, 50))
    save_package(unet, b, mean=(0, 0, 0), std=(1, 1, 1))
    out_a = tilerun.predict(img, str(a), tmp_path / "a.zarr", tile=32, overlap=8).logits.values
    norm = (img - 100) / 50
    out_b = tilerun.predict(norm, str(b), tmp_path / "b.zarr", tile=32, overlap=8).logits.values
    np.testing.assert_allclose(out_a, out_b, atol=1e-5)


def test_files_that_are_not_packages_are_refused(tmp_path):
    pickle_file = tmp_path / "m.pt"
    torch.save({"x": torch.zeros(1)}, pickle_file)
    with pytest.raises(ModelError, match="not a safetensors model package"):
        load_package(pickle_file)
    bare = tmp_path / "bare.safetensors"
    save_file({"x": torch.zeros(1)}, str(bare))
    with pytest.raises(ModelError, match=r"no .tilerun\.spec. metadata"):
        read_spec(bare)
    with pytest.raises(ModelError, match="no such model file"):
        load_package(tmp_path / "missing.safetensors")


def test_weights_that_do_not_fit_are_refused(tmp_path):
    unet = build_unet("unet", in_channels=3, classes=2, base=4, depth=2)
    path = tmp_path / "m.safetensors"
    save_package(unet, path)
    state = {k: v for k, v in unet.state_dict().items() if "head" not in k}
    from tilerun.models.package import METADATA_KEY

    save_file(state, str(path), metadata={METADATA_KEY: read_spec(path).to_json()})
    with pytest.raises(ModelError, match="weights do not fit"):
        load_package(path)
