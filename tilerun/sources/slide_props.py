"""What a slide declares about itself, parsed once from an open OpenSlide handle.

:func:`read_properties` turns OpenSlide's string properties and level lists into a
:class:`SlideProperties`: the pyramid (level sizes and downsamples), the level-0 microns per
pixel and where they came from, the scanned region (``openslide.bounds-*``, clipped to
level 0), the background colour, and the properties copied into the source's metadata.

Vendors write these properties loosely (missing, empty, zero, non-numeric), so every parser
here returns ``None`` for a value it cannot use and the caller falls back to a documented
default; nothing in this module raises. It is separate from the grid arithmetic
(:mod:`tilerun.sources.slide_grid`), which only ever sees validated numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: OpenSlide properties copied into :meth:`SlideSource.metadata`.
SELECTED_PROPERTIES = (
    "openslide.vendor",
    "openslide.quickhash-1",
    "openslide.comment",
    "openslide.objective-power",
    "openslide.mpp-x",
    "openslide.mpp-y",
    "openslide.bounds-x",
    "openslide.bounds-y",
    "openslide.bounds-width",
    "openslide.bounds-height",
    "openslide.background-color",
    "openslide.level-count",
)

_BOUNDS_KEYS = ("x", "y", "width", "height")


@dataclass(frozen=True)
class SlideProperties:
    """A slide's pyramid and metadata, as read by :func:`read_properties`.

    ``mpp0`` is ``(x, y)`` µm per level-0 pixel or None when unknown; ``mpp0_origin`` says
    where it came from (``"override"``, ``"metadata"`` or ``"none"``). ``bounds`` is the
    scanned region ``(x, y, width, height)`` in level-0 pixels (the whole of level 0 when
    ``bounds_from_slide`` is False). ``properties`` holds the :data:`SELECTED_PROPERTIES`
    the slide has.
    """

    vendor: str | None
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    mpp0: tuple[float, float] | None
    mpp0_origin: str
    bounds: tuple[int, int, int, int]
    bounds_from_slide: bool
    background: tuple[int, int, int]
    properties: dict[str, str]


def read_properties(slide: Any, slide_mpp: float | None) -> SlideProperties:
    """Parse an ``openslide.OpenSlide`` handle; ``slide_mpp`` overrides the level-0 mpp."""
    props = dict(slide.properties)
    level_dimensions = tuple((int(w), int(h)) for w, h in slide.level_dimensions)
    level_downsamples = tuple(float(d) for d in slide.level_downsamples)
    width0, height0 = level_dimensions[0]

    # level-0 microns per pixel
    mpp0: tuple[float, float] | None
    if slide_mpp is not None:
        mpp0 = (float(slide_mpp), float(slide_mpp))
        mpp0_origin = "override"
    else:
        mx = positive_float(props.get("openslide.mpp-x"))
        my = positive_float(props.get("openslide.mpp-y"))
        mpp0 = None if mx is None and my is None else (mx or my or 0.0, my or mx or 0.0)
        mpp0_origin = "metadata" if mpp0 is not None else "none"

    # scanned region (level-0 pixels)
    bounds = [_nonnegative_int(props.get(f"openslide.bounds-{k}")) for k in _BOUNDS_KEYS]
    if None not in bounds and (bounds[2] or 0) > 0 and (bounds[3] or 0) > 0:
        bx, by, bw, bh = (int(b or 0) for b in bounds)
        bx, by = min(bx, width0 - 1), min(by, height0 - 1)
        bw, bh = min(bw, width0 - bx), min(bh, height0 - by)
        bounds_from_slide = True
    else:
        bx, by, bw, bh = 0, 0, width0, height0
        bounds_from_slide = False

    colour = _parse_colour(props.get("openslide.background-color"))
    return SlideProperties(
        vendor=props.get("openslide.vendor"),
        level_dimensions=level_dimensions,
        level_downsamples=level_downsamples,
        mpp0=mpp0,
        mpp0_origin=mpp0_origin,
        bounds=(bx, by, bw, bh),
        bounds_from_slide=bounds_from_slide,
        background=colour if colour is not None else (255, 255, 255),
        properties={k: props[k] for k in SELECTED_PROPERTIES if k in props},
    )


def positive_float(value: Any) -> float | None:
    """``value`` as a finite positive float, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _nonnegative_int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _parse_colour(value: str | None) -> tuple[int, int, int] | None:
    """``"RRGGBB"`` (optionally ``#``-prefixed) as an RGB triple, or None."""
    if not value:
        return None
    text = value.strip().lstrip("#")
    if len(text) != 6:
        return None
    try:
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    except ValueError:
        return None
