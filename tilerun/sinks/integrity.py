"""Chunk integrity: every output chunk carries a checksum, checked wherever trust is needed.

A chunk's data can be lost after it was written: a disk error, a kill inside a write, a
``.partial`` folder copied while a run wrote it. ``chunks_done`` says a chunk *was* written,
not that what is there now is what was written. So each chunk write also records, in
``tilerun/chunk_sums`` (:data:`SUMS`, one ``uint64`` row per chunk: the writer's id, then a
CRC-32C per variable of the chunk's data as stored), *before* its ``chunks_done`` mark:

* ``--resume`` reads back the chunks it keeps, checks each against its row (:func:`verify`),
  and writes the bad ones again;
* publishing checks that every chunk is marked done, has its row, and was written by this run
  or is one it kept (:func:`check_publishable`): a chunk another writer slipped in (a run that
  lost its lock) or one never recorded stops the publication;
* ``tilerun info --verify`` reads a store's every chunk and names the bad ones.

Zarr v3 stores also carry Zarr's own ``crc32c`` codec on every variable (see
:func:`~tilerun.sinks.layout.variables.output_codecs`): every Zarr v3 reader then checks the
stored bytes before decompressing them, so a damaged chunk is an error, never garbage (or a
crash in the decompressor). The CRC is computed over the data as decoded, so the same check
holds for Zarr v2 (whose GDAL readers know no checksum codec), for local folders and object
stores alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import google_crc32c
import numpy as np
import zarr

from tilerun.errors import first_line

SUMS = "tilerun/chunk_sums"
#: set in every recorded value, so that 0 (Zarr's fill value) means "nothing recorded"
PRESENT = np.uint64(1 << 32)
#: errors a damaged chunk raises while Zarr reads and decodes it
DECODE_ERRORS: tuple[type[Exception], ...] = (ValueError, RuntimeError, OSError, TypeError,
                                              KeyError, EOFError)


def checksum(data: np.ndarray) -> int:
    """CRC-32C of an array's bytes (C order), marked :data:`PRESENT`; no copy of a C-contiguous
    array."""
    view = np.ascontiguousarray(data).view()
    view.flags.writeable = False  # the C extension takes read-only buffers only
    return int(PRESENT) | google_crc32c.value(view)


def writer_id(token: str) -> int:
    """A run's id in the chunk rows: 32 bits of its lock token, marked :data:`PRESENT`."""
    return int(PRESENT) | int(token[:8], 16)


def create_sums(records: Any, grid: tuple[int, int], variables: tuple[str, ...],
                v3: bool) -> None:
    """The empty :data:`SUMS` array in the records group (one row per chunk)."""
    records.create_array(
        SUMS.split("/")[-1], shape=(*grid, 1 + len(variables)), chunks=(1, 1, 1 + len(variables)),
        dtype="uint64", fill_value=0,
        attributes={"description": "per output chunk: the writer's id, then a CRC-32C of each "
                    "variable's chunk data as stored (each | 2**32)",
                    "columns": ["writer", *variables]},
        dimension_names=("chunk_y", "chunk_x", "column") if v3 else None,
    )


def row(writer: int, stored: Mapping[str, np.ndarray], variables: tuple[str, ...]) -> np.ndarray:
    """A chunk's :data:`SUMS` row, from the data exactly as it is stored."""
    return np.array([writer, *(checksum(stored[v]) for v in variables)], np.uint64)


def read_sums(target: Any) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """The store's rows and the variables of their columns; None for a store without them
    (written before tilerun recorded checksums)."""
    try:
        array = zarr.open_array(target, path=SUMS, mode="r")
    except (FileNotFoundError, KeyError, ValueError):
        return None
    columns = array.attrs.get("columns")
    if not isinstance(columns, list) or not columns:
        return None
    return np.asarray(array[:], np.uint64), tuple(str(c) for c in columns[1:])


@dataclass(frozen=True)
class BadChunk:
    """A chunk whose stored data does not match its record (or cannot be read)."""

    index: tuple[int, int]
    variable: str
    problem: str

    def __str__(self) -> str:
        return f"{self.variable} chunk {self.index} ({self.problem})"


def _stored(group: Any, name: str, ys: slice, xs: slice) -> np.ndarray:
    array = group[name]
    return np.asarray(array[:, ys, xs] if array.ndim == 3 else array[ys, xs])


def verify(target: Any, indices: Iterable[tuple[int, int]], chunk: int,
           sums: tuple[np.ndarray, tuple[str, ...]] | None = None) -> list[BadChunk]:
    """Read back each chunk at ``indices`` (``chunk`` px chunks) and check it against its row:
    unreadable, damaged (Zarr's ``crc32c`` codec), without a row, or different data."""
    sums = sums if sums is not None else read_sums(target)
    group = zarr.open_group(target, mode="r")
    bad: list[BadChunk] = []
    for i, j in indices:
        ys, xs = slice(i * chunk, (i + 1) * chunk), slice(j * chunk, (j + 1) * chunk)
        if sums is None:
            bad.append(BadChunk((i, j), "all", "no checksum recorded"))
            continue
        rows, variables = sums
        for k, name in enumerate(variables, start=1):
            if not rows[i, j, k] & PRESENT:
                bad.append(BadChunk((i, j), name, "no checksum recorded"))
                continue
            try:
                data = _stored(group, name, ys, xs)
            except DECODE_ERRORS as err:
                bad.append(BadChunk((i, j), name, _unreadable(err)))
                continue
            if checksum(data) != int(rows[i, j, k]):
                bad.append(BadChunk((i, j), name, "checksum mismatch"))
    return bad


def _unreadable(err: Exception) -> str:
    if "checksum" in str(err).lower():
        return "damaged: its stored CRC-32C does not match"
    return f"unreadable: {first_line(err)[:60]}"


def unpublishable(done: np.ndarray, rows: np.ndarray | None, writer: int,
                  kept: Mapping[tuple[int, int], int]) -> str | None:
    """Why a store whose chunk marks are ``done`` and rows are ``rows`` must not be published
    by the run ``writer`` that kept the chunks ``kept`` (index → their writer), else None."""
    missing = int((~done).sum())
    if missing:
        return f"{missing} chunk(s) are not recorded as written"
    if rows is None:
        return "it has no chunk checksums"
    unrecorded = int((~(rows[..., 1:] & PRESENT).astype(bool)).any(axis=-1).sum())
    if unrecorded:
        return f"{unrecorded} chunk(s) have no checksum"
    expected = np.full(done.shape, writer, np.uint64)
    for (i, j), other in kept.items():
        expected[i, j] = other
    foreign = np.argwhere(rows[..., 0] != expected)
    if len(foreign):
        i, j = (int(v) for v in foreign[0])
        return (f"{len(foreign)} chunk(s), e.g. {(i, j)}, were written by another run (one "
                "that lost its lock?)")
    return None


def describe(bad: list[BadChunk], shown: int = 4) -> str:
    """The bad chunks in a few words, for one line."""
    names = ", ".join(str(b) for b in bad[:shown])
    more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
    return f"{names}{more}"


def verify_store(target: Any, done: np.ndarray | None) -> tuple[int, list[BadChunk]]:
    """Check every chunk of the store ``target`` marked in ``done`` (its ``chunks_done``)
    against its row: how many were checked, and the bad ones. ``ValueError`` for a store with
    no rows (written by a tilerun before checksums)."""
    sums = read_sums(target)
    if sums is None or done is None:
        raise ValueError("it has no chunk checksums to check (written by an older tilerun)")
    group = zarr.open_group(target, mode="r")
    chunk = int(group[sums[1][0]].chunks[-1])  # type: ignore[union-attr]
    indices = [(int(i), int(j)) for i, j in np.argwhere(done)]
    return len(indices), verify(target, indices, chunk, sums)
