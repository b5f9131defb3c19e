"""ukis-csmask's cloud and cloud-shadow models by name: ``--model csmask:6band-l2a``.

`ukis-csmask <https://github.com/dlr-eoc/ukis-csmask>`_ (DLR, Apache-2.0; ``pip install
tilerun[csmask]``) ships four ONNX U-Nets (EfficientNet-B4 encoder, fixed 256 × 256 input)
that segment clouds and cloud shadows in Sentinel-2 and Landsat reflectance: 4 bands (blue,
green, red, nir) or 6 (plus swir16, swir22), for L1C (top of atmosphere) or L2A (bottom of
atmosphere) products. Their files are read from the installed package, never copied; the spec
comes from the JSON the package ships beside each model (the same numbers its own ``CSmask``
class uses): per-band mean/std over reflectance in [0, 1], the band order, and the classes
``background``, ``cloud``, ``cloud shadow`` (softmax). The package's own tiling uses 256 px
tiles overlapping by 20 %, which the spec recommends too.

The input must be reflectance (digital numbers × 0.0001 for Sentinel-2): a raster whose
scale/offset tags say so is converted on reading (the spec's ``apply_scale_offset``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tilerun.errors import ModelError
from tilerun.models.spec import ModelSpec

PREFIX = "csmask:"
#: the names tilerun gives the package's files
MODELS = {"6band-l2a": "model_6b_l2a", "6band-l1c": "model_6b_l1c",
          "4band-l2a": "model_4b_l2a", "4band-l1c": "model_4b_l1c"}
CLASSES = ("background", "cloud", "cloud shadow")
#: what the package's own tiling loop overlaps tiles by
OVERLAP = 0.2


def is_csmask(name: object) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def package_folder() -> Path:
    """Where ukis-csmask is installed (found without importing it)."""
    found = importlib.util.find_spec("ukis_csmask")
    if found is None or found.origin is None:
        raise ModelError("csmask", "the ukis-csmask package is not installed; "
                         "pip install 'tilerun[csmask]'")
    return Path(found.origin).parent


def csmask_model(name: str) -> tuple[Path, ModelSpec]:
    """The ONNX file and spec of ``csmask:<variant>`` (a :data:`MODELS` key)."""
    variant = name.removeprefix(PREFIX)
    if variant not in MODELS:
        raise ModelError(name, f"no such ukis-csmask model; choose from "
                         f"{', '.join(PREFIX + v for v in MODELS)}")
    stem = package_folder() / MODELS[variant]
    onnx, meta = stem.with_suffix(".onnx"), stem.with_suffix(".json")
    try:
        info = json.loads(meta.read_text())
        data = info["data"]
        mean, std = data["dataset_statistics"]["img"]
        band_names = data["dataset_statistics"]["band_names"]
        version = info["model"]["version"]
        tile = int(data["target_size"][0])
    except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
        raise ModelError(meta, f"is not the ukis-csmask model description tilerun reads ({err})"
                         ) from err
    if not onnx.is_file():
        raise ModelError(onnx, "is missing from the installed ukis-csmask package")
    spec = ModelSpec(
        architecture="onnx", bands=len(band_names), band_names=tuple(band_names),
        mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),
        class_names=CLASSES, activation="softmax", tile=tile, overlap=OVERLAP,
        name=f"ukis-csmask {version}",
    )
    return onnx, spec
