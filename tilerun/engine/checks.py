"""Check the input against the model's spec before any work: bands, dtype, pixel size."""

from __future__ import annotations

import warnings

import numpy as np

from tilerun.engine.degrees import degree_pixel
from tilerun.errors import BandError, InputError, InputWarning, PixelSizeError
from tilerun.models import ModelHandle, ModelSpec
from tilerun.models.scaling import model_dtype, takes_counts
from tilerun.sources import Source


def check_input(source: Source, model: ModelHandle, pixel_size_tolerance: float) -> None:
    """Raise a one-line error naming the file when the input does not fit the model.

    Pixel size: with ``r = input / model``, an error when ``|r - 1| > tolerance`` (the message
    gives the factor ``r``); ``tolerance = inf`` turns the check off. An input whose pixel size
    is unknown (no georeferencing, degrees) only warns.
    """
    spec = model.spec
    bands = source.shape[0]
    if spec.bands is not None and spec.bands != bands:
        raise BandError(
            source.name,
            f"has {bands} band(s) selected but the model takes {spec.bands}"
            + (f" ({', '.join(spec.band_names)})" if spec.band_names else "")
            + "; choose bands with --bands",
        )
    if spec.dtype is not None and str(model_dtype(source, spec)) != spec.dtype:
        raise InputError(source.name, _dtype_problem(source, spec))
    if spec.pixel_size is None or pixel_size_tolerance == float("inf"):
        return
    size = source.pixel_size()
    described = None
    if size is None and spec.pixel_unit == "m" and (pixel := degree_pixel(source)) is not None:
        size, described = (pixel.metres, "m"), pixel.describe()  # compared in metres
    if size is None:
        warnings.warn(
            f"{source.name}: pixel size unknown (no georeferencing, or a CRS without units); "
            f"cannot check it against the model's {spec.pixel_size:g} {spec.pixel_unit}",
            InputWarning,
            stacklevel=2,
        )
        return
    value, unit = size
    if unit != spec.pixel_unit:
        problem = f"pixel size is in {unit}, the model's in {spec.pixel_unit}"
        raise PixelSizeError(source.name, problem)
    factor = value / spec.pixel_size
    if abs(factor - 1) > pixel_size_tolerance:
        raise PixelSizeError(
            source.name,
            f"pixel size {described or f'{value:g} {unit}'} is {factor:.3g}× the model's "
            f"{spec.pixel_size:g} "
            f"{unit} (tolerance {pixel_size_tolerance:.0%}); resample the input or raise "
            "--pixel-size-tolerance",
        )


def _dtype_problem(source: Source, spec: ModelSpec) -> str:
    """Why the input's values are not what the model was trained on, and the right fix: a
    product's counts need their scale/offset (which turns them into physical values), not a
    type conversion, which would keep the counts."""
    stored = f"pixel type {source.dtype}"
    wanted = np.dtype(spec.dtype)
    if source.dtype.kind in "ui" and wanted.kind == "f":
        if source.scale_offset is not None and takes_counts(spec):
            return (f"{stored} with a scale/offset that the model spec says not to apply "
                    f"(apply_scale_offset false), but the model was trained on {spec.dtype} "
                    "values; fix the model spec")
        return (f"{stored} declares no scale/offset, but the model was trained on "
                f"{spec.dtype} (physical) values; give the raster its product's scale/offset "
                "(e.g. Sentinel-2 L2A: gdal_edit.py -scale 0.0001 -offset 0 FILE; then they "
                "are applied), or read the scene through its STAC item (raster:bands)")
    if source.dtype.kind == "f" and wanted.kind in "ui":
        return (f"{stored} but the model was trained on {spec.dtype} counts; give it the "
                "product's stored counts (not physical values)")
    return (f"{stored} but the model was trained on {spec.dtype}; convert the input (e.g. "
            "gdal_translate -ot) so its values mean what the model expects")


def check_default_model(source: Source, model: ModelHandle, pixel_size_tolerance: float) -> None:
    """Refuse an input the bundled demo model (used when no ``--model`` is given) does not suit,
    with one line that says to pass ``--model``: a whole-slide image, or a scene whose bands,
    pixel type or pixel size differ from the demo model's. No option of the demo model would
    make such an input mean anything to it (except choosing 3 of a scene's bands)."""
    spec = model.spec
    hint = (f"the bundled demo model (--model demo, the default) takes {describe_input(spec)}: "
            "pass --model with a model for this image")
    if source.is_slide and spec.pixel_unit != "um":
        raise InputError(source.name, f"is a whole-slide image; {hint}")
    try:
        check_input(source, model, pixel_size_tolerance)
    except BandError:
        count = source.shape[0]
        if spec.bands and count > spec.bands:
            hint += f" (or choose {spec.bands} of its bands with --bands)"
        raise BandError(source.name, f"has {count} band(s); {hint}") from None
    except InputError as err:  # pixel type or pixel size: the problem, then what to do
        raise type(err)(source.name, f"{err.problem.split('; ')[0]}; {hint}") from None


def describe_input(spec: ModelSpec) -> str:
    """What a model takes, in a few words: ``3-band (red, green, blue) uint8 images at 10 m``."""
    bands = f"{spec.bands}-band " if spec.bands else ""
    if spec.bands and spec.band_names:
        bands += f"({', '.join(spec.band_names)}) "
    dtype = f"{spec.dtype} " if spec.dtype else ""
    size = f" at {spec.pixel_size:g} {spec.pixel_unit}" if spec.pixel_size is not None else ""
    return f"{bands}{dtype}images{size}"
