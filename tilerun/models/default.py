"""The model used when none is given: the bundled demo package.

:data:`BUNDLED` is a 0.5 MB U-Net (base 8, depth 3) trained by ``examples/train_demo_model.py``
on the project's own synthetic scenes (:mod:`tilerun.sample`): 3-band uint8 RGB at 10 m, four
classes, named :data:`DEMO` in its spec (``--model demo`` on the command line). It is a
demonstration, not a land-cover model for real imagery. Should the file be missing (a broken
install), the fallback is a U-Net with fixed random weights, and the CLI says its outputs mean
nothing.
"""

from __future__ import annotations

import torch

from tilerun.models.bundled import BUNDLED, DEMO
from tilerun.models.handle import ModelHandle, as_model
from tilerun.models.unet import build_unet

__all__ = ["BUNDLED", "DEMO", "default_model"]


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
