"""Architectures by name: how a spec's ``architecture`` becomes a module, without running code
from the model file.

A spec names an architecture; the weights file holds only tensors. Names resolve, in order:

1. tilerun's own (``unet``, its presets, ``attention-unet``) and those registered in Python
   with :func:`tilerun.models.register_architecture`;
2. ``smp.<Class>``: a ``segmentation_models_pytorch`` model (``smp.Unet``, ``smp.UnetPlusPlus``,
   ``smp.FPN``, ``smp.DeepLabV3Plus`` … :data:`SMP_CLASSES`), when that library is installed.
   ``encoder_weights`` defaults to ``None``: the weights come from the file, never from a
   download;
3. ``monai.<Class>``: a MONAI network (``monai.UNet``, ``monai.BasicUNet``,
   ``monai.FlexibleUNet``, ``monai.SegResNet`` … :data:`MONAI_CLASSES`), ``spatial_dims``
   defaulting to 2, when MONAI is installed;
4. an entry point of the group :data:`ENTRY_POINT_GROUP` with that name, which a third-party
   package declares in its own metadata (``[project.entry-points."tilerun.architectures"]``,
   ``name = "package.module:builder"``): only installed packages can add names.

Only the classes listed here are reachable: a spec cannot name an arbitrary dotted path. The
arguments are the class's keyword arguments (the spec's ``arguments``). Each module built is
given a ``downsampling`` attribute (what its tile sizes must be multiples of) where the
library's class does not have one.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from torch import nn

from tilerun.errors import ModelError

ENTRY_POINT_GROUP = "tilerun.architectures"
SMP_CLASSES = ("Unet", "UnetPlusPlus", "FPN", "PSPNet", "DeepLabV3", "DeepLabV3Plus", "Linknet",
               "MAnet", "PAN", "UPerNet", "Segformer")
MONAI_CLASSES = ("UNet", "BasicUNet", "BasicUNetPlusPlus", "FlexibleUNet", "SegResNet",
                 "AttentionUnet", "DynUNet")

Builder = Callable[..., nn.Module]


def resolve(name: str, registry: dict[str, Builder], subject: object) -> Builder:
    """The builder for ``name`` (see the module docstring), or a :class:`ModelError` that says
    what is known and, for a library's name, what to install."""
    if name in registry:
        return registry[name]
    prefix, _, cls = name.partition(".")
    if prefix == "smp" and cls:
        return _library_builder(name, "segmentation_models_pytorch", cls, SMP_CLASSES,
                                "segmentation-models-pytorch", subject)
    if prefix == "monai" and cls:
        return _library_builder(name, "monai.networks.nets", cls, MONAI_CLASSES, "monai",
                                subject)
    plugin = _entry_point(name)
    if plugin is not None:
        return plugin
    known = ", ".join(sorted(registry))
    raise ModelError(subject, f"unknown architecture {name!r}; tilerun knows {known}, "
                     "smp.<Class> (segmentation_models_pytorch), monai.<Class> and names "
                     f"installed packages register under the entry-point group "
                     f"{ENTRY_POINT_GROUP!r}")


def _library_builder(name: str, module: str, cls: str, allowed: tuple[str, ...], package: str,
                     subject: object) -> Builder:
    if cls not in allowed:
        raise ModelError(subject, f"architecture {name!r} is not one tilerun builds; choose from "
                         f"{', '.join(name.split('.')[0] + '.' + c for c in allowed)}")
    try:
        library = importlib.import_module(module)
    except ImportError as err:
        raise ModelError(subject, f"architecture {name!r} needs {package}, which cannot be "
                         f"imported ({err}); pip install {package}") from err
    factory = getattr(library, cls)
    adapt = _smp_module if module.startswith("segmentation") else _monai_module

    def build(**arguments: Any) -> nn.Module:
        return adapt(factory, cls, dict(arguments))

    return build


def _smp_module(factory: Builder, cls: str, arguments: dict[str, Any]) -> nn.Module:
    """An smp model with no pretrained download; ``downsampling`` from its encoder."""
    arguments.setdefault("encoder_weights", None)
    if arguments["encoder_weights"] is not None:
        raise ModelError(f"smp.{cls}", "encoder_weights must be null: the weights come from the "
                         "model file, tilerun downloads nothing")
    module = factory(**arguments)
    depth = int(arguments.get("encoder_depth", 5))
    stride = getattr(getattr(module, "encoder", None), "output_stride", None)
    setattr(module, "downsampling", int(stride) if isinstance(stride, int) else 2 ** depth)  # noqa: B010
    return module


def _monai_module(factory: Builder, cls: str, arguments: dict[str, Any]) -> nn.Module:
    """A 2-D MONAI network (``spatial_dims`` 2 unless given) with its ``downsampling``."""
    arguments.setdefault("spatial_dims", 2)
    module = factory(**arguments)
    setattr(module, "downsampling", _monai_downsampling(cls, arguments))  # noqa: B010
    return module


def _monai_downsampling(cls: str, arguments: dict[str, Any]) -> int:
    """What MONAI's class divides its input by (its tile sizes must be multiples of it)."""
    if cls in ("UNet", "AttentionUnet"):
        return math.prod(int(s) if isinstance(s, int) else int(max(s))
                         for s in arguments.get("strides", ()))
    if cls == "DynUNet":
        strides = arguments.get("strides", ())
        return math.prod(int(s) if isinstance(s, int) else int(max(s)) for s in strides)
    if cls == "SegResNet":
        return 2 ** (len(arguments.get("blocks_down", (1, 2, 2, 4))) - 1)
    if cls == "FlexibleUNet":
        return 32
    return 16  # BasicUNet, BasicUNetPlusPlus: four 2× poolings


def _entry_point(name: str) -> Builder | None:
    """The builder an installed package registers as ``name``, if any."""
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name == name:
            try:
                builder: Builder = point.load()
            except (ImportError, AttributeError) as err:
                raise ModelError(name, f"the package that registers architecture {name!r} "
                                 f"cannot be imported ({err})") from err
            return builder
    return None
