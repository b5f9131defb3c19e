"""What the engine needs to know about a model, whatever it came from."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from tilerun.errors import ModelError
from tilerun.models.bundled import BUNDLED, DEMO
from tilerun.models.loading import load_model
from tilerun.models.spec import ModelSpec


@dataclass(frozen=True)
class ModelHandle:
    """A module plus its spec; ``downsampling`` is what tile sizes must be multiples of."""

    module: nn.Module
    name: str
    spec: ModelSpec
    downsampling: int

    @property
    def in_channels(self) -> int | None:
        return self.spec.bands


def _first_conv_channels(module: nn.Module) -> int | None:
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            return int(layer.in_channels)
    return None


def as_model(
    model: str | Path | nn.Module | ModelHandle,
    *,
    allow_pickle: bool = False,
    spec: ModelSpec | None = None,
    **overrides: Any,
) -> ModelHandle:
    """A model file or any ``torch.nn.Module`` as a :class:`ModelHandle`.

    ``overrides`` replace spec fields (e.g. ``mean``/``std`` for a plain module). For a plain
    module, ``bands`` is read off its first convolution when it has one, and the downsampling
    factor is its ``downsampling`` attribute when it has one (tilerun's U-Nets do), else 32,
    which suits common encoders. The name ``"demo"`` (when no such file exists) is the
    bundled demo package, as ``--model demo`` on the command line.
    """
    if isinstance(model, ModelHandle):
        return model
    if model == DEMO and not Path(model).exists():
        model = BUNDLED
    overrides = {
        k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None
    }
    if isinstance(model, (str, Path)):
        module, loaded = load_model(model, allow_pickle=allow_pickle, spec=spec)
        name = str(model)
    elif isinstance(model, nn.Module):
        module, loaded, name = model.eval(), spec or ModelSpec(), type(model).__name__
    else:
        raise ModelError(repr(type(model)), "not a model file or a torch.nn.Module")
    if loaded.bands is None:
        loaded = replace(loaded, bands=_first_conv_channels(module))
    border: Any = getattr(module, "border", 0)
    if loaded.border == 0 and border:
        loaded = replace(loaded, border=int(border))
    try:
        loaded = replace(loaded, **overrides)
    except TypeError as err:
        raise ModelError(name, f"unknown model option: {err}") from err
    return ModelHandle(module, name, loaded, int(getattr(module, "downsampling", 32)))
