"""Whether a run turns the input's stored values into physical ones before normalisation.

Products store physical values as scaled integers: Sentinel-2 L2A reflectance is
``DN × 0.0001 (− 0.1 from baseline 04.00)`` in uint16, declared as GDAL band scale/offset or
STAC ``raster:bands``. A model trained on reflectance must see reflectance, so the raster's
scale/offset is applied before the model's normalisation by default, as rioxarray's
``mask_and_scale`` applies it on reading. It is not applied when the model takes the counts:
its spec says ``apply_scale_offset: false``, declares an integer pixel type, or normalises by
the input type's range (``scale: dtype_range``, a normalisation of counts); a package made
before the switch existed says so by those. The run records which (:func:`scaling_record`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tilerun.models.spec import ModelSpec
from tilerun.sources.base import ScaleOffset, Source


def takes_counts(spec: ModelSpec) -> bool:
    """Whether the model was trained on stored counts rather than physical values."""
    if not spec.apply_scale_offset or spec.scale == "dtype_range":
        return True
    return spec.dtype is not None and np.dtype(spec.dtype).kind in "uib"


def applied_scaling(source: Source, spec: ModelSpec) -> ScaleOffset | None:
    """The scale/offset the run applies: the input's own, unless the model takes counts."""
    scaling = source.scale_offset
    if scaling is None or takes_counts(spec):
        return None
    return scaling


def model_dtype(source: Source, spec: ModelSpec) -> np.dtype[Any]:
    """The pixel type the model receives: float32 once a scale/offset is applied."""
    return np.dtype(np.float32) if applied_scaling(source, spec) is not None else source.dtype


def scaling_record(source: Source, spec: ModelSpec) -> dict[str, Any] | None:
    """What the output records: the input's scale/offset, where it was read, and whether it
    was applied (and why not); None when the input declares none."""
    scaling = source.scale_offset
    if scaling is None:
        return None
    applied = applied_scaling(source, spec) is not None
    record: dict[str, Any] = {"applied": applied, "origin": scaling.origin,
                              "scales": list(scaling.scales), "offsets": list(scaling.offsets)}
    if not applied:
        record["reason"] = _why_counts(spec)
    return record


def _why_counts(spec: ModelSpec) -> str:
    if not spec.apply_scale_offset:
        return "the model takes counts (its spec: apply_scale_offset false)"
    if spec.scale == "dtype_range":
        return "the model takes counts (its spec normalises by the pixel type's range)"
    return f"the model takes {spec.dtype} counts (its spec's dtype)"
