"""Models: the U-Net, safe packages (safetensors + JSON spec), and the engine's model handle."""

from tilerun.models.handle import ModelHandle, as_model
from tilerun.models.package import ModelSpec, load_package, read_spec, save_package
from tilerun.models.unet import PRESETS, UNet, UNetConfig, build_unet

__all__ = [
    "PRESETS",
    "ModelHandle",
    "ModelSpec",
    "UNet",
    "UNetConfig",
    "as_model",
    "build_unet",
    "load_package",
    "read_spec",
    "save_package",
]
