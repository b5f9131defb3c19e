"""Models: the U-Net, safe packages (safetensors + JSON spec), loaders and the engine's handle."""

from tilerun.models import attention  # noqa: F401  (registers "attention-unet")
from tilerun.models.handle import ModelHandle, as_model
from tilerun.models.loading import build_from_state, load_model, read_state_dict
from tilerun.models.package import (
    ARCHITECTURES,
    load_package,
    read_spec,
    register_architecture,
    save_package,
)
from tilerun.models.packing import pack_model
from tilerun.models.spec import ModelSpec
from tilerun.models.specfile import read_spec_file
from tilerun.models.unet import PRESETS, UNet, UNetConfig, build_unet

__all__ = [
    "ARCHITECTURES",
    "PRESETS",
    "ModelHandle",
    "ModelSpec",
    "UNet",
    "UNetConfig",
    "as_model",
    "build_from_state",
    "build_unet",
    "load_model",
    "load_package",
    "pack_model",
    "read_spec",
    "read_spec_file",
    "read_state_dict",
    "register_architecture",
    "save_package",
]
