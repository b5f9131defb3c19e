"""The blending modes' names, importable without numpy (the CLI lists them in ``--help``);
:mod:`tilerun.blending.windows` defines what each one weighs."""

from __future__ import annotations

BLEND_MODES = ("gaussian", "hann", "linear", "constant", "crop")
