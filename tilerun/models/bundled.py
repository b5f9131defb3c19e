"""Where the bundled demo package lies and its name, in a leaf module: both the handle
(``as_model("demo")``) and :mod:`tilerun.models.default` need them, and the default model
needs the handle, so the names live below both."""

from __future__ import annotations

from pathlib import Path

BUNDLED = Path(__file__).with_name("data") / "demo.safetensors"
#: The bundled model's name (in its spec), which ``--model`` and ``tilerun model info`` take.
DEMO = "demo"
