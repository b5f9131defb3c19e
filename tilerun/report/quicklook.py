"""Quicklooks: a small PNG of a prediction store's labels, one colour per class.

The store is read with a stride (every ``step``-th row and column, ``step`` chosen so the long
edge fits ``max_size``), chunk by chunk through Zarr, so a store of any size is never loaded
whole. Labels are read as exports and comparisons read them
(:func:`tilerun.sinks.layout.store.read_labels`: ``labels``, else the argmax of ``logits``, else of
``probabilities``). Nodata (255, NaN logits) is transparent black. Unlike exports, a quicklook
reads any store with those variables, finished or not (a glance at a run in progress).

Class colours, first found wins: the ``colours`` argument; ``class_colours`` in the store's
``tilerun`` attributes; the ``class_colours`` of the model package the store names (when that
file is still there and its classes match); a fixed palette
(:data:`tilerun.classes.colours.PALETTE`).

The PNG is written by a tiny encoder (:func:`tilerun.report.png.encode_png`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tilerun.classes.colours import PALETTE, Colour, hex_colour, palette_colour, rgba_colour
from tilerun.classes.names import label_names
from tilerun.errors import InputError, OptionError, OutputError, OutputExistsError, TilerunError
from tilerun.report.png import encode_png
from tilerun.sinks.layout.codes import LABEL_FILL
from tilerun.sinks.layout.store import class_names, open_target, read_labels, run_record
from tilerun.sinks.objects import object_url
from tilerun.writing import unwritable, write_problem


@dataclass(frozen=True)
class Quicklook:
    """What :func:`write_quicklook` wrote."""

    path: Path
    width: int
    height: int
    step: int
    variable: str
    class_names: tuple[str, ...]
    colours: tuple[str, ...]
    colour_source: str


def write_quicklook(
    store_path: str | Path,
    png_path: str | Path,
    max_size: int = 1024,
    *,
    colours: Sequence[Colour] | None = None,
    overwrite: bool = False,
) -> Quicklook:
    """Write a PNG of the store's class labels, at most ``max_size`` pixels on the long edge.

    ``colours``: one ``#rrggbb`` string or ``(r, g, b)`` per class, overriding the store's.
    """
    url = object_url(store_path)  # an output in object storage
    store: Any = url if url else Path(store_path)
    png = Path(png_path)
    if max_size < 1:
        raise OptionError("--max-size", f"must be ≥ 1, got {max_size}")
    if png.exists() and not overwrite:
        raise OutputExistsError(png, "already exists; pass --overwrite to replace it")
    if png.is_dir():
        raise OutputError(png, "is a folder, not a PNG file")
    if not png.parent.exists():
        raise OutputError(png, f"parent folder {png.parent} does not exist")
    if not png.parent.is_dir():
        raise OutputError(png, f"its parent {png.parent} is a file, not a folder")
    problem = unwritable(png.parent)
    if problem:
        raise OutputError(png, problem)
    group = _open_store(store)
    labels, nodata, variable, step = _read_labels(group, store, max_size)
    names = class_names(group, run_record(group))
    palette, source = _resolve_colours(group, store, names, colours)
    rgba = colourise(labels, palette, nodata)
    _write_atomically(png, encode_png(rgba))
    height, width = labels.shape
    hexes = tuple(hex_colour(c, "--colours") for c in palette)
    return Quicklook(png, width, height, step, variable, names, hexes, source)


def decimation_step(height: int, width: int, max_size: int) -> int:
    """The smallest stride that brings the long edge to at most ``max_size`` pixels."""
    return max(1, math.ceil(max(height, width) / max_size))


def colourise(
    labels: np.ndarray, colours: Sequence[Colour], nodata: np.ndarray | None = None
) -> np.ndarray:
    """``(H, W, 4)`` uint8 RGBA: class ``k`` gets ``colours[k]``; nodata is transparent black.

    Labels beyond ``colours`` (but not 255) get the palette's colours so they still show.
    """
    lut = np.zeros((256, 4), np.uint8)
    for k in range(LABEL_FILL):
        lut[k, :3] = _rgb(colours[k] if k < len(colours) else palette_colour(k))
        lut[k, 3] = 255
    rgba = lut[labels.astype(np.uint8)]
    if nodata is not None:
        rgba[nodata] = 0
    return rgba


def _open_store(store: str | Path) -> Any:
    import zarr

    target = open_target(store)
    if isinstance(target, Path) and not target.exists():
        raise InputError(store, "no such Zarr store")
    try:
        return zarr.open_group(target, mode="r")
    except (OSError, ValueError, KeyError, TypeError, FileNotFoundError) as err:
        raise InputError(store, f"not a readable Zarr store ({type(err).__name__})") from err


def _read_labels(
    group: Any, store: Path, max_size: int
) -> tuple[np.ndarray, np.ndarray, str, int]:
    """Strided labels as every reader of outputs reads them
    (:func:`tilerun.sinks.layout.store.read_labels`), their nodata mask, the variable they come from
    and the step."""
    arrays = set(group.array_keys())
    variable = next((v for v in ("labels", "logits", "probabilities") if v in arrays), None)
    if variable is None:
        raise InputError(store, "has neither labels, logits nor probabilities; is it a tilerun "
                         "output?")
    array, dims = group[variable], ("(y, x)" if variable == "labels" else "(class, y, x)")
    if array.ndim != dims.count(",") + 1:
        raise InputError(store, f"{variable} has {array.ndim} dimensions, expected "
                         f"{dims.count(',') + 1} {dims}")
    step = decimation_step(int(array.shape[-2]), int(array.shape[-1]), max_size)
    labels = read_labels(group, slice(None, None, step), slice(None, None, step))
    return labels, labels == LABEL_FILL, variable, step


def _resolve_colours(
    group: Any, store: Path, names: tuple[str, ...], colours: Sequence[Colour] | None
) -> tuple[tuple[Colour, ...], str]:
    """The colours and where they came from (argument, store, model or palette)."""
    if colours is not None:
        for colour in colours:
            _rgb(colour)
        if len(colours) < len(names):
            raise OptionError("--colours", f"{len(colours)} colours for {len(names)} classes")
        return tuple(colours), "argument"
    attrs = run_record(group)
    stored = attrs.get("class_colours") or group.attrs.get("class_colours")
    if _usable(stored, names):
        return tuple(stored), "store"
    model = attrs.get("model")
    if isinstance(model, str) and model.endswith(".safetensors") and Path(model).is_file():
        from tilerun.models.package import read_spec

        try:
            spec = read_spec(model)
        except TilerunError:
            spec = None
        if spec is not None and _usable(spec.class_colours, names) and (
            spec.class_names is None or label_names(spec.class_names, len(names)) == names
        ):
            return tuple(spec.class_colours or ()), "model"
    return PALETTE, "palette"


def _usable(colours: Any, names: tuple[str, ...]) -> bool:
    if not isinstance(colours, (list, tuple)) or len(colours) < len(names):
        return False
    try:
        for colour in colours:
            _rgb(colour)
    except OptionError:
        return False
    return True


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as err:
        with contextlib.suppress(OSError):  # it may not exist, or not be removable either
            partial.unlink(missing_ok=True)
        raise OutputError(path, write_problem(err, path.parent)) from err


def _rgb(colour: Colour) -> tuple[int, int, int]:
    r, g, b, _ = rgba_colour(colour, "--colours")
    return r, g, b
