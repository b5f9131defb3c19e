"""ukis-csmask's published cloud models by name, against the package's own prediction, on a
real Sentinel-2 L2A scene (../shared/data, per-band files stacked here by hand).

The scene is a 320 × 320 px crop at 100 m (the fixture is decimated 10×), far coarser than the
10–30 m the models were trained at, so their labels depend on the tile a pixel sits in: the
package's own prediction agrees with itself shifted by 16 px on only 96.8 % (4 bands) and
95.5 % (6 bands) of the pixels. The tests therefore check (1) that tilerun feeds the model
exactly what the package feeds it (one tile's logits, to 1e-5), which is what the spec is for,
and (2) that over the whole scene tilerun agrees with the package as well as the package
agrees with itself under a tile shift, and that the package's own kappa threshold (0.75) holds
with its prediction as the reference.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import zarr

import tilerun
from tilerun.engine import PredictOptions
from tilerun.models import as_model
from tilerun.models.normalise import Normalizer

try:
    from tests.conftest import shared_file
except ImportError:
    from conftest import shared_file  # type: ignore[no-redef]

pytest.importorskip("ukis_csmask")
SCENE = "geotiff/rio-tiler-pds/S2A_29RKH_20200219_0_L2A"
#: the model's band names → the Sentinel-2 band file and its grid factor (20 m-class bands
#: are stored at 200 m: repeated 2× to the 100 m grid)
BANDS = {"blue": ("B02", 1), "green": ("B03", 1), "red": ("B04", 1), "nir": ("B08", 1),
         "swir16": ("B11", 2), "swir22": ("B12", 2)}


def reflectance_scene(root: Path, names: tuple[str, ...]) -> tuple[Path, np.ndarray]:
    """The bands ``names`` as float32 reflectance (DN × 0.0001, the STAC item's scale) in one
    GeoTIFF, in the model's order; and the ``(rows, cols, bands)`` array the package takes."""
    layers, profile = [], None
    for name in names:
        band, factor = BANDS[name]
        with rasterio.open(shared_file(f"{SCENE}/{band}.tif")) as f:
            dn = f.read(1).astype(np.float32)
            profile = profile or f.profile
        layers.append(np.kron(dn, np.ones((factor, factor), np.float32)) * np.float32(1e-4))
    stack = np.stack(layers)
    assert profile is not None
    profile.update(count=len(names), dtype="float32", nodata=None)
    path = root / "reflectance.tif"
    with rasterio.open(path, "w", **profile) as f:
        f.write(stack)
    return path, np.moveaxis(stack, 0, -1).copy()


def peer(image: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The package's own prediction (its ``CSmask`` class and tiling loop)."""
    from ukis_csmask.mask import CSmask

    with _quiet():
        return CSmask(image.copy(), band_order=list(names), product_level="l2a",
                      batch_size=4).csm[..., 0]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No warnings (the drift report: a 100 m desert scene is unlike the training data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def kappa(a: np.ndarray, b: np.ndarray) -> float:
    from ukis_csmask.utils import cohen_kappa_score

    return float(cohen_kappa_score(a.ravel(), b.ravel()))


@pytest.mark.parametrize("variant", ["4band-l2a", "6band-l2a"])
def test_tilerun_feeds_the_model_what_the_package_feeds_it(tmp_path, variant):
    from ukis_csmask.mask import CSmask

    handle = as_model(f"csmask:{variant}")
    names = handle.spec.band_names
    assert names is not None and handle.fixed_tile == 256 and handle.downsampling == 32
    _, image = reflectance_scene(tmp_path, names)
    window = image[:256, 32:288]
    theirs_in = CSmask.normalize(window.copy(), handle.spec.mean, handle.spec.std)
    import onnxruntime

    session = onnxruntime.InferenceSession(handle.module.path, providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"input": np.moveaxis(theirs_in, -1, 0)[None]})[0]
    normalise = Normalizer.for_model(handle, len(names), np.dtype(np.float32))
    ours_in = normalise(torch.from_numpy(np.moveaxis(window, -1, 0).copy()), None)[None]
    with torch.inference_mode():
        ours = handle.module(ours_in).numpy()
    assert float(np.abs(ours - theirs).max()) <= 1e-5 * float(np.abs(theirs).max())


@pytest.mark.parametrize("variant", ["4band-l2a", "6band-l2a"])
def test_whole_scene_labels_agree_with_the_package_as_it_agrees_with_itself(tmp_path, variant):
    spec = as_model(f"csmask:{variant}").spec
    names = spec.band_names
    assert names is not None
    path, image = reflectance_scene(tmp_path, names)
    reference = peer(image, names)
    shifted = peer(image[16:, 16:], names)
    self_agreement = float((reference[16:, 16:] == shifted).mean())
    with _quiet():
        tilerun.run(path, f"csmask:{variant}", tmp_path / "o.zarr",
                    PredictOptions(output=("labels",), batch_size=4))
    ours = np.asarray(zarr.open_group(str(tmp_path / "o.zarr"))["labels"][:])
    agreement = float((ours == reference).mean())
    assert agreement >= min(0.97, self_agreement - 0.015), (agreement, self_agreement)
    assert round(kappa(reference, ours), 2) >= 0.75  # the package's own threshold
    # every class the package finds, tilerun finds in about the same share
    ours_share = np.bincount(ours.ravel(), minlength=3) / ours.size
    their_share = np.bincount(reference.ravel(), minlength=3) / reference.size
    assert np.abs(ours_share - their_share).max() < 0.03, (ours_share, their_share)


def test_the_same_onnx_without_its_spec_warns_and_disagrees(tmp_path):
    handle = as_model("csmask:4band-l2a")
    names = handle.spec.band_names
    assert names is not None
    path, image = reflectance_scene(tmp_path, names)
    with pytest.warns(UserWarning, match="no input normalisation"):
        tilerun.run(path, handle.module.path, tmp_path / "raw.zarr",
                    PredictOptions(output=("labels",), batch_size=4))
    raw = np.asarray(zarr.open_group(str(tmp_path / "raw.zarr"))["labels"][:])
    assert float((raw == peer(image, names)).mean()) < 0.9


def test_an_unknown_csmask_name_lists_the_models():
    with pytest.raises(tilerun.TilerunError, match="choose from csmask:6band-l2a, "):
        as_model("csmask:s2-12band")


def test_openvino_asked_for_runs_the_real_graph_checked_against_onnxruntime():
    pytest.importorskip("openvino")
    from tilerun.engine.runner import TileRunner

    handle = as_model("csmask:4band-l2a")
    runner = TileRunner(handle, torch.device("cpu"), backend="openvino")
    example = torch.randn((2, 4, 256, 256), generator=torch.Generator().manual_seed(0))
    runner.probe(4, 256, example)
    selection = runner.select(example, 2)
    assert selection.backend == "openvino"
    assert 0 < selection.error <= 1e-3  # two runtimes: not bit-equal, well within tolerance
    auto = TileRunner(handle, torch.device("cpu"))
    assert auto.select(example, 2).backend == "onnxruntime"  # its own runtime, unchecked
