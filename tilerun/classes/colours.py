"""Class colours: the one fallback palette and the one colour parser of quicklooks, viewer
metadata (OME-NGFF), exports (COG colour maps, QuPath) and the HTML report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tilerun.errors import OptionError

#: A colour as users give it: ``#rrggbb``, ``#rrggbbaa`` or 3 or 4 integers 0 … 255.
Colour = str | Sequence[int]

#: Fallback class colours (Tableau 10, then its 10 lighter variants): class ``k`` gets
#: ``PALETTE[k % 20]`` when neither the user nor the model names its colour.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip


def palette_colour(value: int) -> str:
    """The fallback colour of label ``value``."""
    return PALETTE[value % len(PALETTE)]


def rgba_colour(colour: Colour, subject: str = "colors") -> tuple[int, int, int, int]:
    """``#rrggbb[aa]`` (``#`` optional) or 3 or 4 integers 0 … 255 as RGBA (opaque unless
    alpha is given); :class:`OptionError` naming ``subject`` (the option) otherwise."""
    if isinstance(colour, str):
        text = colour.removeprefix("#")
        if len(text) in (6, 8):
            try:
                values = [int(text[i: i + 2], 16) for i in range(0, len(text), 2)]
            except ValueError:
                values = []
            if values:
                return values[0], values[1], values[2], values[3] if len(values) == 4 else 255
        raise OptionError(subject, f"expected #rrggbb or #rrggbbaa, got {colour!r}")
    values = list(colour)
    if len(values) not in (3, 4) or not all(
        isinstance(v, int | np.integer) and 0 <= v <= 255 for v in values
    ):
        raise OptionError(subject, f"expected 3 or 4 integers 0 … 255, got {colour!r}")
    return (int(values[0]), int(values[1]), int(values[2]),
            int(values[3]) if len(values) == 4 else 255)


def hex_colour(colour: Colour, subject: str = "colors") -> str:
    """``#rrggbb`` of a colour (its alpha dropped)."""
    return "#{:02x}{:02x}{:02x}".format(*rgba_colour(colour, subject)[:3])
