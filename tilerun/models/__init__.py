"""Models: the U-Net, safe packages (safetensors + JSON spec), loaders and the engine's handle."""

from tilerun.models.handle import ModelHandle, as_model
from tilerun.models.loading import load_model
from tilerun.models.package import (
    ARCHITECTURES,
    load_package,
    pack_state_dict,
    read_spec,
    register_architecture,
    save_package,
)
from tilerun.models.spec import ModelSpec
from tilerun.models.unet import PRESETS, UNet, UNetConfig, build_unet

__all__ = [
    "ARCHITECTURES",
    "PRESETS",
    "ModelHandle",
    "ModelSpec",
    "UNet",
    "UNetConfig",
    "as_model",
    "build_unet",
    "load_model",
    "load_package",
    "pack_state_dict",
    "read_spec",
    "register_architecture",
    "save_package",
]
