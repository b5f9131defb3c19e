"""tilerun: streaming segmentation inference over images too large for memory."""

__version__ = "0.1.0"

from tilerun.engine import PredictOptions, RunSummary, predict, run
from tilerun.errors import TilerunError
from tilerun.models import UNet, UNetConfig, as_model, load_package, save_package
from tilerun.sources import open_source

__all__ = [
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
    "run",
    "save_package",
]
