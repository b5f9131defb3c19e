"""Tissue masks for whole-slide images, so that glass is never run through the model.

* :mod:`tilerun.tissue.detect`: the detection algorithm (thumbnail pixels in, a boolean mask
  out: saturation, Otsu, morphology, small components);
* :mod:`tilerun.tissue.files`: :func:`load_mask`, a mask someone else made (image or Zarr);
* :mod:`tilerun.tissue.windows`: :class:`TissueMask`, which windows of the output hold tissue.
"""

from tilerun.tissue.detect import (
    MAX_THRESHOLD,
    MIN_SATURATION,
    disk,
    otsu_threshold,
    remove_small_components,
    saturation,
    tissue_mask,
)
from tilerun.tissue.files import MAX_MASK_SIZE, load_mask
from tilerun.tissue.windows import TissueMask

__all__ = [
    "MAX_MASK_SIZE",
    "MAX_THRESHOLD",
    "MIN_SATURATION",
    "TissueMask",
    "disk",
    "load_mask",
    "otsu_threshold",
    "remove_small_components",
    "saturation",
    "tissue_mask",
]
