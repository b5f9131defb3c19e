"""The model spec: everything needed to run a model correctly, stored with its weights.

Users lose days to models fed the wrong bands, the wrong normalisation or the wrong pixel size.
A tilerun package says, in JSON (schema :data:`SCHEMA_VERSION`):

* ``architecture`` + ``arguments``: a name from tilerun's registry, never code;
* ``name``: what the model is called, for people (optional; the bundled model is ``demo``);
* ``bands`` / ``band_names`` / ``dtype``: the input it expects; ``band_names`` (one per band,
  in the order the model takes them) lets a source with named bands (a STAC item, per-band
  files, band descriptions) be read in the model's order rather than the file's;
* ``apply_scale_offset``: whether the reader turns a raster's stored counts into physical
  values with the file's own scale/offset tags first (default ``True``); ``False`` for models
  trained on the raw stored counts (e.g. Sentinel-2 L2A digital numbers, reflectance × 10 000);
* normalisation in float32, either ``mean``/``std`` per band, ``x' = (x - mean) / std``, or
  ``scale = "dtype_range"``, ``x' = (x - lo) / (hi - lo)`` over the input dtype's range;
* ``class_names`` / ``class_colours`` (``#rrggbb``) and the output ``activation``;
* recommended ``tile`` and ``overlap``;
* ``pixel_size`` in ``pixel_unit`` (``m`` ground sampling distance for rasters, ``um`` microns
  per pixel for slides) that it was trained at;
* ``border``: pixels an output tile loses on each side with valid (unpadded) convolutions, as in
  the original U-Net (output = the centre of the input tile);
* ``output``: for a model with several outputs (an ONNX graph's), the name of the one that
  holds the segmentation logits (default: the first);
* ``embedded_normalisation``: the graph applies the normalisation above itself (an export
  made with it embedded, for deployment elsewhere), so the engine feeds it raw values;
* ``apply_scale_offset``: the raster's own scale/offset (GDAL metadata, STAC ``raster:bands``)
  turn its counts into physical values before normalisation (default); False for a model
  trained on raw counts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from tilerun.errors import ModelError

SCHEMA_VERSION = 1
ACTIVATIONS = ("softmax", "sigmoid", "none")
SCALES = ("none", "dtype_range")
PIXEL_UNITS = ("m", "um")


@dataclass(frozen=True)
class ModelSpec:
    """What a package (or the caller, for a plain module) says about a model."""

    architecture: str = "module"
    arguments: dict[str, Any] | None = None
    bands: int | None = None
    #: the bands' names, in the order the model takes them (matched against a source's names)
    band_names: tuple[str, ...] | None = None
    #: apply the raster's own scale/offset tags before normalising (False: raw stored counts)
    apply_scale_offset: bool = True
    dtype: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    scale: str = "none"
    class_names: tuple[str, ...] | None = None
    class_colours: tuple[str, ...] | None = None
    activation: str = "softmax"
    tile: int | None = None
    overlap: float | None = None
    pixel_size: float | None = None
    pixel_unit: str | None = None
    border: int = 0
    embedded_normalisation: bool = False
    #: the output holding the logits, by name, for models with several (default: the first)
    output: str | None = None
    name: str | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        _check(self.activation in ACTIVATIONS, f"activation must be one of {ACTIVATIONS}")
        _check(self.scale in SCALES, f"scale must be one of {SCALES}")
        _check(self.pixel_unit in (None, *PIXEL_UNITS), f"pixel_unit must be one of {PIXEL_UNITS}")
        _check(
            (self.pixel_size is None) == (self.pixel_unit is None),
            "pixel_size and pixel_unit go together",
        )
        _check((self.mean is None) == (self.std is None), "mean and std go together")
        _check(self.mean is None or self.scale == "none", "use mean/std or scale, not both")
        _check(self.border >= 0, "border must be ≥ 0")
        _check(
            not self.embedded_normalisation or self.mean is not None or self.scale != "none",
            "embedded_normalisation needs the mean/std or scale it embeds",
        )
        if self.bands is not None:
            for name in ("band_names", "mean", "std"):
                value = getattr(self, name)
                _check(
                    value is None or len(value) == self.bands,
                    f"{name} has {len(value or ())} values for {self.bands} bands",
                )
        if self.class_names is not None and self.class_colours is not None:
            _check(
                len(self.class_colours) == len(self.class_names),
                "class_colours and class_names differ in length",
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "spec") -> ModelSpec:
        if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
            found = data.get("schema_version")
            raise ModelError(name, f"spec schema {found} is not {SCHEMA_VERSION}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ModelError(name, f"unknown spec keys {sorted(unknown)}")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        try:
            return cls(**data)
        except ModelError as err:
            raise ModelError(name, f"invalid model spec: {err.problem}") from err
        except TypeError as err:
            raise ModelError(name, f"invalid model spec: {err}") from err

    @classmethod
    def from_json(cls, text: str, name: str = "spec") -> ModelSpec:
        try:
            data = json.loads(text)
        except ValueError as err:
            raise ModelError(name, f"model spec is not JSON ({err})") from err
        if not isinstance(data, dict):
            raise ModelError(name, "model spec must be a JSON object")
        return cls.from_dict(data, name)


def _check(condition: bool, problem: str) -> None:
    if not condition:
        raise ModelError("model spec", problem)
