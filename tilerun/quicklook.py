"""Quicklooks: a small PNG of a prediction store's labels, one colour per class.

The store is read with a stride (every ``step``-th row and column, ``step`` chosen so the long
edge fits ``max_size``), chunk by chunk through Zarr, so a store of any size is never loaded
whole. ``labels`` is used when the store has it, else the argmax of ``logits``. Nodata (label
``_FillValue``, 255, or NaN logits) is transparent black.

Class colours, first found wins: the ``colours`` argument; ``class_colours`` in the store's
``tilerun`` attributes; the ``class_colours`` of the model package the store names (when that
file is still there and its classes match); a fixed palette (:data:`PALETTE`).

The PNG is written by a tiny encoder (:func:`encode_png`: numpy + zlib, no imaging library).
"""

from __future__ import annotations

import contextlib
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tilerun.errors import InputError, OptionError, OutputError, OutputExistsError, TilerunError
from tilerun.sinks.objects import object_url
from tilerun.sinks.store import open_target, run_record
from tilerun.writing import unwritable, write_problem

#: Fallback class colours (Tableau 10, then 10 lighter variants).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
LABEL_NODATA = 255
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

Colour = str | Sequence[int]


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
    labels, nodata, variable, step, classes = _read_labels(group, store, max_size)
    names = _class_names(group, classes)
    palette, source = _resolve_colours(group, store, names, colours)
    rgba = colourise(labels, palette, nodata)
    _write_atomically(png, encode_png(rgba))
    height, width = labels.shape
    hexes = tuple(_hex(c) for c in palette)
    return Quicklook(png, width, height, step, variable, names, hexes, source)


def decimation_step(height: int, width: int, max_size: int) -> int:
    """The smallest stride that brings the long edge to at most ``max_size`` pixels."""
    return max(1, math.ceil(max(height, width) / max_size))


def colourise(
    labels: np.ndarray, colours: Sequence[Colour], nodata: np.ndarray | None = None
) -> np.ndarray:
    """``(H, W, 4)`` uint8 RGBA: class ``k`` gets ``colours[k]``; nodata is transparent black.

    Labels beyond ``colours`` (but not 255) get :data:`PALETTE` colours so they still show.
    """
    lut = np.zeros((256, 4), np.uint8)
    for k in range(LABEL_NODATA):
        colour = colours[k] if k < len(colours) else PALETTE[k % len(PALETTE)]
        lut[k, :3] = _rgb(colour)
        lut[k, 3] = 255
    rgba = lut[labels.astype(np.uint8)]
    if nodata is not None:
        rgba[nodata] = 0
    return rgba


def encode_png(pixels: np.ndarray, level: int = 6) -> bytes:
    """PNG bytes of an ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8 image."""
    if pixels.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, not {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4) or 0 in pixels.shape:
        raise ValueError(f"PNG pixels must be (H, W[, 1|3|4]) and non-empty, not {pixels.shape}")
    height, width, channels = pixels.shape
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = np.zeros((height, 1 + width * channels), np.uint8)  # filter byte 0 (none) per row
    rows[:, 1:] = pixels.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"".join((
        PNG_SIGNATURE,
        _chunk(b"IHDR", header),
        _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)),
        _chunk(b"IEND", b""),
    ))


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


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
) -> tuple[np.ndarray, np.ndarray, str, int, int | None]:
    """Strided labels, their nodata mask, the variable used, the step and the class count."""
    names = set(group.array_keys())
    if "labels" in names:
        array = group["labels"]
        if array.ndim != 2:
            raise InputError(store, f"labels has {array.ndim} dimensions, expected 2 (y, x)")
        step = decimation_step(array.shape[0], array.shape[1], max_size)
        labels = np.asarray(array[::step, ::step])
        fill = array.attrs.get("_FillValue", LABEL_NODATA)
        classes = group["logits"].shape[0] if "logits" in names else None
        return labels, labels == fill, "labels", step, classes
    if "logits" in names:
        array = group["logits"]
        if array.ndim != 3:
            raise InputError(store, f"logits has {array.ndim} dimensions, expected 3 (class, y, x)")
        step = decimation_step(array.shape[1], array.shape[2], max_size)
        logits = np.asarray(array[:, ::step, ::step], dtype=np.float32)
        nodata = np.asarray(np.isnan(logits).any(axis=0))
        labels = np.where(nodata[None], -np.inf, logits).argmax(axis=0).astype(np.uint8)
        return labels, nodata, "logits", step, int(array.shape[0])
    raise InputError(store, "has neither labels nor logits; is it a tilerun output?")


def _class_names(group: Any, classes: int | None) -> tuple[str, ...]:
    """Class names from the run's attributes, else the ``class`` coordinate, else indices."""
    names = run_record(group).get("class_names")
    if names:
        return tuple(str(v) for v in names)
    if "class" in set(group.array_keys()):
        return tuple(str(v) for v in np.asarray(group["class"][:]).tolist())
    return tuple(str(k) for k in range(classes or 0))


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
            spec.class_names is None or tuple(spec.class_names) == names
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


def _rgb(colour: Colour) -> tuple[int, int, int]:
    """``#rrggbb`` / ``rrggbb`` or an ``(r, g, b)`` triple as three ints in 0 … 255."""
    if isinstance(colour, str):
        text = colour.removeprefix("#")
        if len(text) == 6:
            try:
                return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
            except ValueError:
                pass
        raise OptionError("--colours", f"expected #rrggbb, got {colour!r}")
    values = tuple(colour)
    if len(values) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255
                                   for v in values):
        raise OptionError("--colours", f"expected three integers 0 … 255, got {colour!r}")
    return int(values[0]), int(values[1]), int(values[2])


def _hex(colour: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*_rgb(colour))


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as err:
        with contextlib.suppress(OSError):  # it may not exist, or not be removable either
            partial.unlink(missing_ok=True)
        raise OutputError(path, write_problem(err, path.parent)) from err
