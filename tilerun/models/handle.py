"""What the engine needs to know about a model, whatever it came from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from tilerun.errors import ModelError
from tilerun.models.package import load_package


@dataclass(frozen=True)
class ModelHandle:
    """A module plus the facts the engine checks and applies before running it.

    ``in_channels`` is None when it cannot be read off the module (then the source's band count
    is trusted); ``downsampling`` is the factor tile sizes must be multiples of.
    """

    module: nn.Module
    name: str
    in_channels: int | None
    downsampling: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None


def _first_conv_channels(module: nn.Module) -> int | None:
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            return int(layer.in_channels)
    return None


def as_model(
    model: str | Path | nn.Module | ModelHandle,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
) -> ModelHandle:
    """A package path or any ``torch.nn.Module`` as a :class:`ModelHandle`.

    For a plain module the downsampling factor is its ``downsampling`` attribute when it has
    one (tilerun's U-Net does), else 32, which suits common encoders.
    """
    if isinstance(model, ModelHandle):
        return model
    if isinstance(model, (str, Path)):
        module, spec = load_package(model)
        return ModelHandle(
            module=module,
            name=str(model),
            in_channels=_first_conv_channels(module),
            downsampling=int(getattr(module, "downsampling", 32)),
            mean=tuple(mean) if mean is not None else spec.mean,
            std=tuple(std) if std is not None else spec.std,
            class_names=tuple(class_names) if class_names is not None else spec.class_names,
        )
    if isinstance(model, nn.Module):
        return ModelHandle(
            module=model.eval(),
            name=type(model).__name__,
            in_channels=_first_conv_channels(model),
            downsampling=int(getattr(model, "downsampling", 32)),
            mean=tuple(mean) if mean is not None else None,
            std=tuple(std) if std is not None else None,
            class_names=tuple(class_names) if class_names is not None else None,
        )
    raise ModelError(repr(type(model)), "not a model package path or a torch.nn.Module")
