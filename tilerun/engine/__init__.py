"""The engine: plan chunks over the tile grid, run them as a Dask graph, write each chunk once."""

from tilerun.engine.options import PredictOptions
from tilerun.engine.plan import ChunkPlan
from tilerun.engine.run import RunSummary, predict, run

__all__ = ["ChunkPlan", "PredictOptions", "RunSummary", "predict", "run"]
