"""GeoJSON that QuPath imports (File → Import objects, or drag and drop) for slide outputs.

QuPath reads a ``FeatureCollection`` whose features carry ``properties.objectType``
(``annotation`` or ``detection``) and ``properties.classification = {"name", "color": [r, g,
b]}`` (its own export writes exactly these; ``measurements`` become the object's measurement
list). Coordinates are QuPath's image coordinates: pixels of the full-resolution image, origin
at its top-left corner, y down.

Mapping output pixels to level-0 pixels: the run recorded ``slide.level0_affine``, which maps
an output pixel corner ``(col, row)`` to the level-0 corner, whatever level, downsample
(integer or not), ``--mpp`` resampling and bounds offset it used (see
:mod:`tilerun.sources.slide`). Region outlines run along output pixel corners, so applying that
affine puts every vertex exactly on the level-0 position of that corner.

``origin="bounds"`` subtracts the slide's ``openslide.bounds-x/y`` offset: for QuPath's
OpenSlide image server, which crops a slide to its bounds when both the bounds' width and
height differ from level 0's (e.g. most MIRAX slides); the default ``slide`` suits QuPath's
Bio-Formats server, QuPath with ``--no-crop``, and slides without bounds.

Features are written one by one as regions are completed, never collected in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from tilerun.classes.colours import palette_colour, rgba_colour
from tilerun.classes.names import class_name
from tilerun.errors import InputError, OptionError
from tilerun.exports.polygons import Region, region_batches, to_frame
from tilerun.exports.reader import FinishedOutput
from tilerun.exports.target import ExportTarget

OBJECT_TYPES = ("annotation", "detection")
ORIGINS = ("slide", "bounds")


@dataclass(frozen=True)
class QupathOptions:
    """QuPath object type of the features, and where their origin is (see module docstring)."""

    object_type: str = "annotation"
    origin: str = "slide"

    def __post_init__(self) -> None:
        if self.object_type not in OBJECT_TYPES:
            raise OptionError("--object-type", f"choose from {OBJECT_TYPES}, "
                              f"got {self.object_type!r}")
        if self.origin not in ORIGINS:
            raise OptionError("--origin", f"choose from {ORIGINS}, got {self.origin!r}")


@dataclass(frozen=True)
class QupathSummary:
    """What :func:`write_qupath` wrote."""

    features: int
    object_type: str
    #: the affine from output pixel corners to the written coordinates
    frame: Affine


def write_qupath(
    output: FinishedOutput, target: ExportTarget, options: QupathOptions,
    progress: Callable[[int], None] | None = None,
) -> QupathSummary:
    """Write ``output``'s label regions as QuPath objects in level-0 pixel coordinates."""
    slide = output.slide
    if slide is None:
        raise InputError(output.path, "is not a slide output; QuPath GeoJSON needs level-0 "
                         "slide coordinates")
    frame = _frame(output, slide, options.origin)
    mpp0 = _mpp0(slide)
    features = 0
    with target.writing() as temporary, _open_text(temporary) as out:
        out.write('{"type": "FeatureCollection", "features": [\n')
        for batch in region_batches(output, progress):
            for text in _features(output, batch, frame, mpp0, options.object_type):
                out.write(",\n" if features else "")
                out.write(text)
                features += 1
        out.write("\n]}\n")
    return QupathSummary(features, options.object_type, frame)


def _open_text(path: Path) -> Any:
    return path.open("w", encoding="utf-8")


def _frame(output: FinishedOutput, slide: dict[str, Any], origin: str) -> Affine:
    if origin != "bounds":
        return output.frame
    bounds = slide.get("bounds")
    if not isinstance(bounds, list | tuple) or len(bounds) != 4:
        raise InputError(output.path, "its slide record has no bounds for --origin bounds")
    return Affine.translation(-float(bounds[0]), -float(bounds[1])) * output.frame


def _mpp0(slide: dict[str, Any]) -> tuple[float, float] | None:
    mpp0 = slide.get("mpp0")
    if isinstance(mpp0, list | tuple) and len(mpp0) == 2:
        try:
            return float(mpp0[0]), float(mpp0[1])
        except (TypeError, ValueError):
            return None
    return None


def _features(output: FinishedOutput, batch: list[Region], frame: Affine,
              mpp0: tuple[float, float] | None, object_type: str) -> Iterator[str]:
    """One GeoJSON Feature (text) per region, geometries transformed in bulk."""
    import shapely

    polygons = to_frame(np.array([r.polygon for r in batch], dtype=object), frame)
    geometries = shapely.to_geojson(polygons)
    pixel_area = abs(frame.determinant)
    for region, geometry in zip(batch, geometries, strict=True):
        area = region.pixels * pixel_area
        value = region.value
        names, colours = output.class_names, output.class_colours
        name = class_name(names, value)
        colour = colours[value] if value < len(colours) else palette_colour(value)
        measurements: dict[str, float] = {
            "class_id": value, "pixels": region.pixels, "area_level0_px2": area,
        }  # fmt: skip
        if mpp0 is not None:
            measurements["area_um2"] = area * mpp0[0] * mpp0[1]
        properties = {
            "objectType": object_type,
            "classification": {"name": name, "color": _rgb(colour)},
            "measurements": measurements,
        }
        yield (f'{{"type": "Feature", "geometry": {geometry}, '
               f'"properties": {json.dumps(properties)}}}')


def _rgb(colour: str) -> list[int]:
    return list(rgba_colour(colour)[:3])
