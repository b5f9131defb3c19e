"""tilerun: streaming segmentation inference over images too large for memory.

The public names are imported on first use (PEP 562), so ``import tilerun`` — and the
``tilerun`` command's ``--help`` — do not pay for torch, Dask, xarray or Zarr.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tilerun._version import __version__

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports these
    from tilerun.engine import PredictOptions, RunSummary, predict, run
    from tilerun.engine.job import predict_many
    from tilerun.errors import TilerunError
    from tilerun.models import (
        UNet,
        UNetConfig,
        as_model,
        load_model,
        load_package,
        save_package,
    )
    from tilerun.sinks.job_summary import JobSummary
    from tilerun.sources import open_source

#: public name → the module that defines it
_LAZY = {
    "PredictOptions": "tilerun.engine.options",
    "RunSummary": "tilerun.engine.execute",
    "predict": "tilerun.engine.execute",
    "run": "tilerun.engine.execute",
    "predict_many": "tilerun.engine.job",
    "JobSummary": "tilerun.sinks.job_summary",
    "TilerunError": "tilerun.errors",
    "UNet": "tilerun.models",
    "UNetConfig": "tilerun.models",
    "as_model": "tilerun.models",
    "load_model": "tilerun.models",
    "load_package": "tilerun.models",
    "save_package": "tilerun.models",
    "open_source": "tilerun.sources",
}

__all__ = [
    "JobSummary",
    "PredictOptions",
    "RunSummary",
    "TilerunError",
    "UNet",
    "UNetConfig",
    "__version__",
    "as_model",
    "load_model",
    "load_package",
    "open_source",
    "predict",
    "predict_many",
    "run",
    "save_package",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tilerun' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
