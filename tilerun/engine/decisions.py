"""What a run decides before any work, shared by :func:`~tilerun.engine.execute.run` and
:func:`~tilerun.engine.dry_run.plan_run`: tile and overlap defaults, the output's layout and
viewer pyramids, slide resolution options, and the record (with its ``--resume``
fingerprint) the output keeps of how it was made.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tilerun._version import __version__
from tilerun.engine.graph import Job
from tilerun.engine.options import PredictOptions
from tilerun.errors import OptionError, OutputWarning
from tilerun.models import ModelHandle
from tilerun.sinks import OutputLayout, Sink

DEFAULT_TILE = 256
DEFAULT_OVERLAP = 0.25
#: tiles in the probe batch each backend is checked on
PROBE_TILES = 2


def first(*values: Any) -> Any:
    """The first value that is not None (an explicit option beats the spec's recommendation)."""
    return next(v for v in values if v is not None)


def output_layout(
    options: PredictOptions, source: Any, spec: Any, classes: int, sink: Sink
) -> OutputLayout:
    """The output's shape and variables: those asked for, plus what the pyramids need."""
    variables = options.output
    pyramids = pyramid_kinds(options, source, sink)
    why_not = no_pyramids(options, sink)
    if options.pyramid == "auto" and source.is_slide and why_not:
        warnings.warn(f"{sink.name}: no viewer pyramid is written ({why_not})", OutputWarning,
                      stacklevel=2)
    if "labels" in pyramids and "labels" not in variables:
        variables = (*variables, "labels")
    if "probabilities" in pyramids and "logits" not in variables:
        variables = (*variables, "logits")  # the NGFF probability pyramid is made from logits
    _, height, width = source.shape
    return OutputLayout(height, width, classes, options.chunk, variables, options.dtype,
                        spec.class_names, activation=spec.activation,
                        zarr_format=options.zarr_format)


def slide_options(options: PredictOptions, model: ModelHandle) -> dict[str, Any]:
    """Slide resolution options; ``mpp`` defaults to the model's when its spec is in µm."""
    mpp = options.mpp
    if mpp is None and options.level is None and model.spec.pixel_unit == "um":
        mpp = model.spec.pixel_size
    given = {"mpp": mpp, "level": options.level, "slide_mpp": options.slide_mpp}
    return {k: v for k, v in given.items() if v is not None}


def run_attributes(job: Job, model: ModelHandle, options: PredictOptions) -> dict[str, Any]:
    """What the output records about how it was made (the ``tilerun`` root attribute)."""
    grid, spec = job.plan.grid, model.spec
    attrs: dict[str, Any] = {
        "version": __version__,
        "input": job.source.name,
        "model": model.name,
        "tile": grid.input_tile,
        "overlap_px": grid.overlap,
        "border_px": grid.border,
        "blend": job.plan.blend.name,
        "sigma": job.plan.blend.sigma,
        "chunk": job.plan.chunk,
        "bands": list(options.bands or range(1, job.source.shape[0] + 1)),
        "class_names": list(spec.class_names) if spec.class_names else None,
        "class_colours": list(spec.class_colours) if spec.class_colours else None,
        "activation": spec.activation,
        "precision": options.precision,
        "zarr_format": options.zarr_format,
        "tta": options.tta,
        "pixel_size": list(job.source.pixel_size() or ()) or None,
        "slide": job.source.metadata(),
    }
    attrs["fingerprint"] = fingerprint(attrs, job, options)
    return attrs


def fingerprint(attrs: dict[str, Any], job: Job, options: PredictOptions) -> str:
    """What must match for ``--resume`` to continue a store: input, model, options, layout."""
    parts = {
        **attrs,
        "input_stat": _stat(job.source.name),
        "model_stat": _stat(attrs["model"]),
        "shape": list(job.source.shape),
        "classes": job.classes,
        "output": list(options.output),
        "dtype": options.dtype,
        "skip": sorted(job.plan.skip),
        "version": None,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stat(name: str) -> list[float] | None:
    try:
        st = Path(name).stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime]


def pyramid_kinds(options: PredictOptions, source: Any, sink: Sink) -> tuple[str, ...]:
    """The pyramids to write. Where none can be (Zarr v2, a sink that takes none) ``auto``
    makes none, with a warning for a slide, and explicit ones are refused before any work."""
    why_not = no_pyramids(options, sink)
    if options.pyramid == "auto":
        return ("labels",) if source.is_slide and not why_not else ()
    kinds = () if options.pyramid == "none" else tuple(options.pyramid.split(","))
    if kinds and why_not:
        raise OptionError("--pyramid", f"{sink.name} cannot take viewer pyramids ({why_not}); "
                          "pass --pyramid none")
    return kinds


def no_pyramids(options: PredictOptions, sink: Sink) -> str | None:
    """Why this output can take no viewer pyramid, or None."""
    if not sink.takes_pyramids:
        return f"{type(sink).__name__} takes none"
    if options.zarr_format != 3:
        return "OME-Zarr 0.5 pyramids need --zarr-format 3"
    return None


def pyramid_writer(options: PredictOptions, job: Job) -> Callable[[str | Path], None] | None:
    """The OME-NGFF pyramids to add before publishing (``auto``: labels, for slides)."""
    kinds = pyramid_kinds(options, job.source, job.sink)
    if not kinds:
        return None
    from tilerun.sinks.ngff import write_label_pyramid, write_probability_pyramid

    size = job.source.pixel_size()
    pixel_size, unit = ((size[0], size[0]), size[1]) if size else (None, None)

    # The pyramid's group is called ``probabilities`` unless that is the name of a variable.
    name = "probabilities_pyramid" if job.probabilities is not None else "probabilities"

    def write(store: str | Path) -> None:  # the run finishing the store flags it complete after
        if "labels" in kinds:
            write_label_pyramid(store, pixel_size=pixel_size, unit=unit, require_complete=False)
        if "probabilities" in kinds:
            write_probability_pyramid(store, name=name, pixel_size=pixel_size, unit=unit,
                                      require_complete=False)

    return write
