"""The engine: plan chunks over the tile grid, run them as a Dask graph, write each chunk once.

:class:`PredictOptions` is imported at once (the CLI reads its defaults to print ``--help``);
the rest on first use (PEP 562), so the options do not pull in torch and Dask.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tilerun.engine.options import PredictOptions

if TYPE_CHECKING:
    from tilerun.engine.execute import RunSummary, predict, run
    from tilerun.engine.plan import ChunkPlan

_LAZY = {
    "ChunkPlan": "tilerun.engine.plan",
    "RunSummary": "tilerun.engine.execute",
    "predict": "tilerun.engine.execute",
    "run": "tilerun.engine.execute",
}

__all__ = ["ChunkPlan", "PredictOptions", "RunSummary", "predict", "run"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tilerun.engine' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
