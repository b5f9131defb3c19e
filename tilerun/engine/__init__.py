"""The engine: plan chunks over the tile grid, run them as a Dask graph, write each chunk once.

:class:`PredictOptions` is imported at once (the CLI reads its defaults to print ``--help``);
the rest on first use (PEP 562), so the options do not pull in torch and Dask.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

from tilerun.engine.options import PredictOptions

if TYPE_CHECKING:
    from tilerun.engine.plan import ChunkPlan
    from tilerun.engine.run import RunSummary, predict, run

_LAZY = {
    "ChunkPlan": "tilerun.engine.plan",
    "RunSummary": "tilerun.engine.run",
    "predict": "tilerun.engine.run",
    "run": "tilerun.engine.run",
}

__all__ = ["ChunkPlan", "PredictOptions", "RunSummary", "predict", "run"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tilerun.engine' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


class _Engine(types.ModuleType):
    """``tilerun.engine.run`` is the function, as it was when this package imported it eagerly:
    importing the submodule of the same name binds the module here, so take its function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Engine
