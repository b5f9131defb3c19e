"""OME-NGFF metadata for tilerun's pyramids: multiscales, image-label colours and properties,
units and class names (see :mod:`tilerun.sinks.pyramids.ngff`, which writes the arrays)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from tilerun.classes.colours import Colour, palette_colour, rgba_colour
from tilerun.classes.names import label_names
from tilerun.errors import OptionError, OutputWarning
from tilerun.sinks.layout.store import run_record

NGFF_VERSION = "0.5"

#: Space units NGFF lists (UDUNITS-2 names), and common spellings mapped onto them.
NGFF_SPACE_UNITS = frozenset({
    "angstrom", "attometer", "centimeter", "decimeter", "exameter", "femtometer", "foot",
    "gigameter", "hectometer", "inch", "kilometer", "megameter", "meter", "micrometer", "mile",
    "millimeter", "nanometer", "parsec", "petameter", "picometer", "terameter", "yard",
    "yoctometer", "yottameter", "zeptometer", "zettameter",
})  # fmt: skip
UNIT_ALIASES = {
    "m": "meter", "metre": "meter", "metres": "meter", "meters": "meter",
    "km": "kilometer", "kilometre": "kilometer", "cm": "centimeter", "centimetre": "centimeter",
    "mm": "millimeter", "millimetre": "millimeter",
    "um": "micrometer", "µm": "micrometer", "μm": "micrometer", "micron": "micrometer",
    "microns": "micrometer", "micrometre": "micrometer", "nm": "nanometer",
    "nanometre": "nanometer",
}  # fmt: skip


def nodata_value(array: Any) -> Any:
    """The CF ``_FillValue`` where there is one (logits, probabilities), else the Zarr fill
    value (labels: 255), as a Python number."""
    fill = array.attrs.get("_FillValue")
    if isinstance(fill, int | float):
        return fill
    value = array.fill_value
    return value.item() if isinstance(value, np.generic) else value


def ngff_transforms(
    levels: int, pixel_size: tuple[float, float] | None, leading: int = 0
) -> tuple[list[list[float]], list[list[float]]]:
    """NGFF scale and translation per level (1.0 and 0.0 for the ``leading`` non-space axes)."""
    if pixel_size is None:
        py, px = 1.0, 1.0
    else:
        try:
            py, px = (float(v) for v in pixel_size)
        except (TypeError, ValueError) as err:
            raise OptionError("pixel_size", f"expected (y, x) numbers, got {pixel_size}") from err
        if not (py > 0 and px > 0 and math.isfinite(py) and math.isfinite(px)):
            raise OptionError("pixel_size", f"must be positive, got {pixel_size}")
    scales, translations = [], []
    for k in range(levels):
        f = 2.0**k
        scales.append([1.0] * leading + [py * f, px * f])
        translations.append([0.0] * leading + [py * (f - 1) / 2, px * (f - 1) / 2])
    return scales, translations


def ngff_axes(names: tuple[str, ...], unit: str | None) -> list[dict[str, str]]:
    unit = ngff_unit(unit)
    axes = []
    for axis in names:
        if axis == "c":
            axes.append({"name": "c", "type": "channel"})
        else:
            entry = {"name": axis, "type": "space"}
            if unit is not None:
                entry["unit"] = unit
            axes.append(entry)
    return axes


def ngff_unit(unit: str | None) -> str | None:
    if unit is None:
        return None
    name = UNIT_ALIASES.get(unit.strip().lower(), unit.strip().lower())
    if name not in NGFF_SPACE_UNITS:
        warnings.warn(
            f"unit {unit!r} is not one of the space units OME-NGFF lists; viewers may ignore it",
            OutputWarning,
            stacklevel=4,
        )
    return name


def ngff_multiscale(
    name: str,
    axes: list[dict[str, str]],
    scales: list[list[float]],
    translations: list[list[float]],
    *,
    method: str,
    description: str,
) -> dict[str, Any]:
    return {
        "name": name,
        "axes": axes,
        "datasets": [
            {
                "path": str(k),
                "coordinateTransformations": [
                    {"type": "scale", "scale": scale},
                    {"type": "translation", "translation": translation},
                ],
            }
            for k, (scale, translation) in enumerate(zip(scales, translations, strict=True))
        ],
        "type": method,
        "metadata": {"method": f"tilerun.sinks.pyramids ({method})", "description": description},
    }


def ngff_image_label(
    group: Any, source: Any, colors: Sequence[Colour] | None, source_image: str | None
) -> dict[str, Any]:
    """NGFF ``image-label``: ``colors`` and ``properties`` list the same label values.

    Label values are the CF ``flag_values`` (else one per colour given) plus the nodata fill,
    which is transparent and named ``nodata``. Colours missing for a value come from a
    fixed palette.
    """
    label: dict[str, Any] = {}
    fill = nodata_value(source)
    fill_value = int(fill) if isinstance(fill, int | float) and np.isfinite(fill) else None
    if colors is None:
        stored = run_record(group).get("class_colours")
        if isinstance(stored, list | tuple) and stored:
            try:
                colors = [rgba_colour(c) for c in stored]
            except (OptionError, TypeError):
                colors = None
    rgba = [rgba_colour(c) for c in colors] if colors is not None else None
    meanings = str(source.attrs.get("flag_meanings", "")).split()
    flags = source.attrs.get("flag_values")
    if meanings:
        if isinstance(flags, list | tuple) and len(flags) == len(meanings):
            names = {int(v): m for v, m in zip(flags, meanings, strict=True)}
        else:
            names = dict(enumerate(meanings))
    else:
        names = {}
    values = sorted(names) if names else list(range(len(rgba or ())))
    if fill_value is not None and fill_value not in values:
        values.append(fill_value)
    if rgba is not None:
        label["colors"] = [
            {
                "label-value": v,
                "rgba": [0, 0, 0, 0] if v == fill_value and v not in names and v >= len(rgba)
                else list(rgba[v] if v < len(rgba) else rgba_colour(palette_colour(v))),
            }
            for v in values
        ]  # fmt: skip
    if names:
        label["properties"] = [
            {"label-value": v, "class": names.get(v, "nodata" if v == fill_value else str(v))}
            for v in values
        ]
    if source_image is not None:
        label["source"] = {"image": source_image}
    return label


def channel_names(group: Any, source: Any, channels: int) -> list[str]:
    names = source.attrs.get("class_names") or run_record(group).get("class_names")
    names = [str(n) for n in names] if isinstance(names, list | tuple) else []
    return list(label_names(names, channels))
