"""Which tiles not to run: those with no tissue under their support (whole-slide images).

A tile is skipped when no tissue lies under its *support* (where its blending weight is > 0).
Every tissue pixel is therefore still covered by every tile that would cover it in a full run,
so predictions on tissue are identical to a full run; pixels covered by no run tile are written
as fill (NaN logits, label fill) and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tilerun.engine.plan import ChunkPlan
from tilerun.errors import OptionError
from tilerun.sources import Source


def resolve_tissue(option: str | Path | Any, source: Source) -> Any:
    """``none`` → None; ``auto`` → detected on the source's thumbnail (slides; else None);
    a path → a mask image or Zarr array; a ready ``TissueMask`` is used as is."""
    from tilerun.tissue import TissueMask, load_mask, tissue_mask

    if isinstance(option, TissueMask):
        return option
    _, height, width = source.shape
    if option == "none":
        return None
    if option == "auto":
        thumbnail = source.thumbnail(TISSUE_THUMBNAIL)
        if thumbnail is None:
            return None
        mask = tissue_mask(thumbnail)
        return TissueMask(mask, (height / mask.shape[0], width / mask.shape[1]))
    if isinstance(option, (str, Path)):
        return load_mask(option, height, width)
    raise OptionError("--tissue", f"expected auto, none or a mask path, got {option!r}")


#: Long edge of the thumbnail tissue is detected on (a 100k-pixel slide: ~100 px per cell).
TISSUE_THUMBNAIL = 1024


def skipped_tiles(plan: ChunkPlan, tissue: Any) -> frozenset[tuple[int, int]]:
    """Tiles whose clipped support window has no tissue."""
    grid = plan.grid
    return frozenset(
        (r, c)
        for r in range(grid.rows)
        for c in range(grid.cols)
        if not tissue.covers(plan.support_window(r, c))
    )
