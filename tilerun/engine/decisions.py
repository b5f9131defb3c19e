"""What a run decides before any work, shared by :func:`~tilerun.engine.execute.run` and
:func:`~tilerun.engine.dry_run.plan_run`: tile and overlap defaults, the output's layout and
viewer pyramids, slide resolution options, and the record (with its ``--resume``
fingerprint) the output keeps of how it was made.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from tilerun._version import __version__
from tilerun.engine.graph import Job
from tilerun.engine.options import PredictOptions
from tilerun.engine.plan import ChunkPlan
from tilerun.errors import OptionError, OutputWarning
from tilerun.models import ModelHandle
from tilerun.models.scaling import scaling_record
from tilerun.sinks import OutputLayout, PyramidRequest, Sink
from tilerun.sinks.layout.job_record import fingerprint, model_digest, plain

DEFAULT_TILE = 256
DEFAULT_OVERLAP = 0.25
#: tiles in the probe batch each backend is checked on
PROBE_TILES = 2


def first(*values: Any) -> Any:
    """The first value that is not None (an explicit option beats the spec's recommendation)."""
    return next(v for v in values if v is not None)


def model_tile(asked: int | None, model: ModelHandle) -> int:
    """The tile edge: the one asked for, else the spec's, else :data:`DEFAULT_TILE`; a model
    whose input size is fixed takes that size only, by default and as the only choice."""
    fixed = model.fixed_tile
    if fixed is None:
        return int(first(asked, model.spec.tile, DEFAULT_TILE))
    if asked is not None and asked != fixed:
        raise OptionError("--tile", f"{asked} px: {model.name} only takes {fixed} × {fixed} px "
                          f"inputs (its input size is fixed); leave --tile out")
    return fixed


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
    if options.dtype != "float32" and "logits" not in variables:
        warnings.warn(f"--dtype {options.dtype} has no effect: it is the stored logits' type, "
                      f"and --write {','.join(options.output)} writes no logits",
                      OutputWarning, stacklevel=2)
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


def run_attributes(
    source: Any, plan: ChunkPlan, classes: int, model: ModelHandle, options: PredictOptions,
    input_digest: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What the output records about how it was made (the ``tilerun`` root attribute),
    with the job it did and the job's fingerprint (see :mod:`tilerun.sinks.layout.job_record`)."""
    grid, spec = plan.grid, model.spec
    attrs: dict[str, Any] = {
        "version": __version__,
        "input": source.name,
        "model": model.name,
        "tile": grid.input_tile,
        "overlap_px": grid.overlap,
        "border_px": grid.border,
        "blend": plan.blend.name,
        "sigma": plan.blend.sigma,
        "chunk": plan.chunk,
        "bands": list(getattr(source, "bands", None) or options.bands
                      or range(1, source.shape[0] + 1)),
        "band_names": [names[0] if names else None for names in source.band_labels]
        or None,
        "class_names": list(spec.class_names) if spec.class_names else None,
        "class_colours": list(spec.class_colours) if spec.class_colours else None,
        "activation": spec.activation,
        "precision": options.precision,
        "zarr_format": options.zarr_format,
        "tta": options.tta,
        "pixel_size": list(source.pixel_size() or ()) or None,
        "slide": source.metadata(),
        "scale_offset": scaling_record(source, spec),
    }
    job = job_record(attrs, source, plan, classes, model, options, input_digest)
    attrs["job"] = plain(job)
    attrs["fingerprint"] = fingerprint(job)
    return attrs


def job_record(
    attrs: dict[str, Any], source: Any, plan: ChunkPlan, classes: int, model: ModelHandle,
    options: PredictOptions, input_digest: dict[str, str] | None,
) -> dict[str, Any]:
    """Everything that changes a value of the output: what ``--resume`` compares. The input
    and model by content (their size and time stamp only where there is no digest)."""
    skip = json.dumps(sorted(plan.skip))
    return {
        **{k: v for k, v in attrs.items() if k != "version"},
        "input_digest": input_digest,
        "input_stat": None if input_digest else _stat(source.name),
        "model_digest": model_digest(model),
        "shape": list(source.shape),
        "classes": classes,
        "output": list(options.output),
        "dtype": options.dtype,
        "skip": hashlib.sha256(skip.encode()).hexdigest()[:16] if plan.skip else None,
    }


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


def pyramid_request(options: PredictOptions, job: Job) -> PyramidRequest | None:
    """The OME-NGFF pyramids the sink is to add before publishing (``auto``: labels, for
    slides), placed by the source's pixel size; the sink writes them into its own store."""
    kinds = pyramid_kinds(options, job.source, job.sink)
    if not kinds:
        return None
    size = job.source.pixel_size()
    pixel_size, unit = ((size[0], size[0]), size[1]) if size else (None, None)
    # The pyramid's group is called ``probabilities`` unless that is the name of a variable.
    name = "probabilities_pyramid" if job.probabilities is not None else "probabilities"
    return PyramidRequest(kinds, pixel_size=pixel_size, unit=unit, probabilities_name=name)
