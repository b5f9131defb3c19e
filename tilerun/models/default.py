"""The model used when none is given.

A package bundled at :data:`BUNDLED` is used when present. Until a trained demo model ships,
the fallback is a small U-Net with fixed random weights (seed 0): it exercises the whole
pipeline, but its predictions mean nothing, and the CLI says so.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tilerun.models.handle import ModelHandle, as_model
from tilerun.models.unet import build_unet

BUNDLED = Path(__file__).with_name("data") / "demo.safetensors"


def default_model(bands: int = 3) -> tuple[ModelHandle, bool]:
    """The bundled demo package if it exists, else a seeded untrained ``unet-small``.

    Returns the handle and whether it is trained.
    """
    if BUNDLED.is_file():
        return as_model(BUNDLED), True
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        module = build_unet("unet-small", in_channels=bands, classes=4)
    finally:
        torch.random.set_rng_state(generator_state)
    handle = as_model(module, mean=(127.5,) * bands, std=(64.0,) * bands)
    return handle, False
