"""The backends' names, importable without torch or any runtime (the CLI lists them in
``--help``); :mod:`tilerun.backends.select` maps each to its :class:`Backend`."""

from __future__ import annotations

#: every backend, in the order :data:`tilerun.backends.select.BACKENDS` holds them
NAMES = ("torch", "compile", "onnxruntime", "openvino")
#: what ``--backend`` accepts: ``auto`` picks among the installed ones
CHOICES = ("auto", *NAMES)
