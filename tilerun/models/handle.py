"""What the engine needs to know about a model, whatever it came from."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from tilerun.errors import ModelError
from tilerun.models.bundled import BUNDLED, DEMO
from tilerun.models.csmask import csmask_model, is_csmask
from tilerun.models.loading import load_model
from tilerun.models.spec import ModelSpec


@dataclass(frozen=True)
class ModelHandle:
    """A module plus its spec; ``downsampling`` is what tile sizes must be multiples of.

    ``fixed_tile``/``fixed_batch``: the only tile edge and batch the model takes, where its
    file fixes them (an ONNX graph with a numeric input size or batch); None: any. ``source``
    says where the model came from (``file``, or ``module`` for one passed in Python), so the
    engine only warns about a missing normalisation where a spec could have said it.
    """

    module: nn.Module
    name: str
    spec: ModelSpec
    downsampling: int
    fixed_tile: int | None = None
    fixed_batch: int | None = None
    source: str = "module"

    @property
    def in_channels(self) -> int | None:
        return self.spec.bands


def _first_conv_channels(module: nn.Module) -> int | None:
    """The input bands: an ONNX graph's channels, else the first convolution's."""
    channels = getattr(getattr(module, "geometry", None), "channels", None)
    if channels is not None:
        return int(channels)
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
    bundled demo package, as ``--model demo`` on the command line; ``"csmask:<variant>"`` is
    one of ukis-csmask's cloud models (:mod:`tilerun.models.csmask`), with its published spec
    (``spec`` replaces it). For a model file, ``spec`` replaces the file's own spec.
    """
    if isinstance(model, ModelHandle):
        return model
    if model == DEMO and not Path(model).exists():
        model = BUNDLED
    overrides = {
        k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None
    }
    if isinstance(model, str) and is_csmask(model):
        path, published = csmask_model(model)
        module, loaded = load_model(path, spec=spec or published)
        name = model
    elif isinstance(model, (str, Path)):
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
    fixed_tile, fixed_batch = _fixed(module, loaded, name)
    source = "module" if isinstance(model, nn.Module) else "file"
    return ModelHandle(module, name, loaded, int(getattr(module, "downsampling", 32)),
                       fixed_tile, fixed_batch, source)


def _fixed(module: nn.Module, spec: ModelSpec, name: str) -> tuple[int | None, int | None]:
    """The tile edge and batch the model's file fixes, checked against the spec."""
    tile: Any = getattr(module, "fixed_tile", None)
    batch: Any = getattr(module, "fixed_batch", None)
    geometry = getattr(module, "geometry", None)
    channels = getattr(geometry, "channels", None)
    if channels is not None and spec.bands is not None and channels != spec.bands:
        raise ModelError(name, f"the spec says {spec.bands} bands but the model's input takes "
                         f"{channels}")
    if tile is not None and spec.tile is not None and spec.tile != tile:
        raise ModelError(name, f"the spec recommends {spec.tile} px tiles but the model only "
                         f"takes {tile} px")
    return (int(tile) if tile is not None else None, int(batch) if batch is not None else None)
