"""Spec files: a :class:`~tilerun.models.ModelSpec` written by hand, in JSON or TOML.

A foreign model (an ONNX file from another project, a TorchScript archive, a state dict) says
nothing about the bands, normalisation or classes it was trained with, and running it without
them gives wrong answers silently. A spec file supplies them: ``tilerun predict --spec`` and
``tilerun model pack --spec`` read it, and ``tilerun model inspect`` prints a template to fill
in. Its keys are ``ModelSpec``'s fields; an unknown key is an error that names it (a typo such
as ``"means"`` must not be ignored, or the model would run un-normalised).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from tilerun.errors import ModelError
from tilerun.models.spec import ModelSpec

#: what the template says of each field (``tilerun model inspect`` prints it)
FIELD_HELP = {
    "bands": "input bands the model takes",
    "band_names": "the bands' names, in the model's order (e.g. blue, green, red, nir)",
    "apply_scale_offset": "false for models trained on a raster's raw stored counts",
    "mean": "per-band mean, x' = (x - mean) / std (or use scale)",
    "std": "per-band standard deviation",
    "scale": "'dtype_range' maps an integer dtype's range to [0, 1] (instead of mean/std)",
    "class_names": "one name per output channel",
    "activation": "softmax, sigmoid or none",
    "tile": "the tile edge it runs best at (a fixed-size model's own)",
    "overlap": "overlap between tiles, fraction or pixels",
    "pixel_size": "the pixel size it was trained at, with pixel_unit m or um",
    "output": "the output holding the logits, for a model with several",
}


def read_spec_file(path: str | Path) -> ModelSpec:
    """The spec in a ``.json`` or ``.toml`` file (other suffixes are read as JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ModelError(path, f"cannot read the spec ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        raise ModelError(path, "the spec is not UTF-8 text") from err
    if path.suffix.lower() != ".toml":
        return ModelSpec.from_json(text, str(path))
    try:
        import tomllib
    except ImportError as err:  # Python 3.10
        raise ModelError(path, "TOML specs need Python ≥ 3.11; write the spec as JSON") from err
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ModelError(path, f"the spec is not TOML ({err})") from err
    return ModelSpec.from_dict(data, str(path))


def spec_template(**known: Any) -> dict[str, Any]:
    """A spec to fill in: what is ``known`` (e.g. ``bands`` read from the file) plus every
    field a person should decide, with ``None`` where they have to say."""
    template: dict[str, Any] = {name: None for name in FIELD_HELP}
    defaults = asdict(ModelSpec())
    for name in ("apply_scale_offset", "scale", "activation"):
        template[name] = defaults[name]
    template.update({k: v for k, v in known.items() if v is not None})
    names = {f.name for f in fields(ModelSpec)}
    unknown = set(template) - names
    if unknown:  # a programming error: FIELD_HELP names a field ModelSpec lacks
        raise ModelError("spec template", f"unknown fields {sorted(unknown)}")
    return template


def template_json(template: dict[str, Any]) -> str:
    """The template as JSON text, ``null`` where a value is still to be given."""
    return json.dumps(template, indent=2)
