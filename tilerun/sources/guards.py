"""Guards around opening an input file: what it must be, and silence while it is probed.

Hostile or damaged inputs must end in one ``error: <file>: <problem>`` line. Three things stood
in the way: GDAL blocks forever on a FIFO (it waits for a writer), GDAL and tifffile report a
damaged header as a dozen warnings and log lines before (or instead of) an error, and a TIFF
cut short opens fine because its header is intact, so the run only failed at the first read of
a missing block, leaving a half-written output behind.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from tilerun.errors import InputError, ignoring

#: Loggers that report on a file being opened (GDAL's messages come through ``rasterio``).
READER_LOGGERS = ("rasterio", "tifffile", "openslide")
#: The first bytes of a classic TIFF (little/big endian) and of a BigTIFF.
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

_SPECIAL_FILES = {
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


def require_existing(path: Path, name: str) -> None:
    """Refuse a path that leads to nothing, saying why: a symbolic link loop or a link to a
    missing file reads as "no such file" from ``Path.exists``, which sends a user looking for
    a file that is there (the link is)."""
    if path.exists():
        return
    try:
        path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise InputError(name, "is a symbolic link loop (following it leads back to "
                             "itself); point it at the raster") from None
    if path.is_symlink():
        raise InputError(name, f"is a symbolic link to {os.readlink(path)}, which does not "
                         "exist") from None
    raise InputError(name, "no such file")


def require_regular_file(path: Path, name: str) -> None:
    """Refuse FIFOs, sockets and device files: tilerun reads windows at random offsets, several
    threads at once, and opening a FIFO blocks until something writes to it (a hang).

    Directories pass: some formats GDAL reads are directories, and GDAL refuses the others.
    """
    try:
        mode = path.stat().st_mode
    except OSError as err:
        raise InputError(name, f"cannot be read ({err.strerror})") from err
    for test, kind in _SPECIAL_FILES.items():
        if test(mode):
            raise InputError(name, f"is not a regular file (it is {kind}); give a raster file")


def check_vrt_sources(dataset: Any, name: str) -> None:
    """Refuse a VRT whose source files are missing, naming the first one.

    GDAL opens such a VRT without complaint and fails at the first read of a window with
    "Read failed", mid-run, with the missing file's name lost in a log line.
    """
    if dataset.driver != "VRT":
        return
    for source in dataset.files[1:]:
        if str(source).startswith("/vsi") or "://" in str(source):
            continue
        if not Path(source).exists():
            raise InputError(name, f"its source file {source} does not exist (the VRT refers "
                             "to it); restore it or fix the VRT's SourceFilename")


@contextlib.contextmanager
def quiet_readers() -> Iterator[None]:
    """Silence warnings and the readers' log output while a file is probed.

    What a damaged file makes GDAL and tifffile say comes before the one error tilerun raises
    about it, and would bury that line. Must run in the opening thread, before any work starts
    (``warnings.catch_warnings`` and logger levels are process-wide).
    """
    loggers = [logging.getLogger(name) for name in READER_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.CRITICAL + 1)
        with ignoring():
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def check_tiff_complete(path: Path, name: str) -> None:
    """Refuse a TIFF whose header refers to bytes past the end of the file.

    A TIFF cut short (an interrupted copy or download) may keep enough of its header for GDAL
    to open it, dropping what it cannot read (the georeferencing, the tile offsets) with
    warnings only; the run then fails at the first missing block, mid-run. Walking the IFD
    chain (:func:`tiff_extent`) finds the cut before any work.
    """
    if not path.is_file():
        return  # a directory: GDAL says what it makes of it
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(4) not in TIFF_MAGIC:
            return
        f.seek(0)
        end = tiff_extent(f)
    if end > size:
        raise InputError(
            name,
            f"is cut short: its TIFF header refers to bytes up to {end:,} but the file has "
            f"{size:,} (an interrupted copy or download?)",
        )


#: Bytes per value of each TIFF field type (TIFF 6.0 and BigTIFF); unknown types count as 1.
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
               16: 8, 17: 8, 18: 8}
#: Unsigned integer field types offsets and byte counts come in: SHORT, LONG, LONG8.
_UINT_TYPES = {3: "u2", 4: "u4", 16: "u8"}
#: StripOffsets → StripByteCounts and TileOffsets → TileByteCounts.
_DATA_TAGS = {273: 279, 324: 325}
#: IFDs walked at most (a loop in the chain of a hostile file ends the walk too).
MAX_IFDS = 10_000


@dataclass(frozen=True)
class _Layout:
    """Byte order and sizes of a classic TIFF (32-bit offsets) or a BigTIFF (64-bit), and the
    file's size (nothing past it is read: a hostile count must not make a huge read)."""

    order: Literal["<", ">"]
    big: bool
    size: int

    @property
    def offset(self) -> str:
        return self.order + ("Q" if self.big else "I")

    @property
    def count(self) -> str:
        return self.order + ("Q" if self.big else "H")

    @property
    def entry(self) -> str:
        """tag, type, count and the raw value field (inline value or offset to it)."""
        return self.order + ("HHQ8s" if self.big else "HHI4s")


def tiff_extent(f: BinaryIO) -> int:
    """The furthest byte a TIFF's IFD chain refers to: the IFDs themselves, tag values stored
    out of line, and the strips or tiles (offset + byte count). Sub-IFDs are not followed."""
    size = f.seek(0, io.SEEK_END)
    f.seek(0)
    head = f.read(16)
    order: Literal["<", ">"] = "<" if head[:2] == b"II" else ">"
    big = len(head) >= 4 and struct.unpack(order + "H", head[2:4])[0] == 43
    layout = _Layout(order, big, size)
    if len(head) < (16 if big else 8):
        return 16 if big else 8
    ifd = struct.unpack_from(layout.offset, head, 8 if big else 4)[0]
    end, seen = 0, set[int]()
    while ifd and ifd not in seen and len(seen) < MAX_IFDS:
        seen.add(ifd)
        ifd_end, entries, ifd = _read_ifd(f, layout, ifd)
        end = max(end, ifd_end, _data_end(f, layout, entries))
        for _, kind, count, field in entries:
            if _TYPE_SIZES.get(kind, 1) * count > len(field):
                end = max(end, struct.unpack(layout.offset, field)[0]
                          + _TYPE_SIZES.get(kind, 1) * count)
    return end


def _read_ifd(f: BinaryIO, layout: _Layout, at: int
              ) -> tuple[int, list[tuple[int, int, int, bytes]], int]:
    """An IFD's end, its entries and the next IFD's offset (0 when it runs past the file)."""
    count_size = struct.calcsize(layout.count)
    entry_size = struct.calcsize(layout.entry)
    offset_size = struct.calcsize(layout.offset)
    if at + count_size > layout.size:
        return at + count_size, [], 0
    f.seek(at)
    n = struct.unpack(layout.count, f.read(count_size))[0]
    end = at + count_size + n * entry_size + offset_size
    if end > layout.size:
        return end, [], 0
    table = f.read(n * entry_size + offset_size)
    entries = [struct.unpack_from(layout.entry, table, i * entry_size) for i in range(n)]
    return end, entries, struct.unpack_from(layout.offset, table, n * entry_size)[0]


def _data_end(f: BinaryIO, layout: _Layout, entries: list[tuple[int, int, int, bytes]]) -> int:
    """The end of the furthest strip or tile of one IFD (0 when its arrays cannot be read)."""
    fields = {tag: (kind, count, field) for tag, kind, count, field in entries}
    end = 0
    for offsets_tag, counts_tag in _DATA_TAGS.items():
        if offsets_tag not in fields or counts_tag not in fields:
            continue
        offsets = _uint_array(f, layout, *fields[offsets_tag])
        counts = _uint_array(f, layout, *fields[counts_tag])
        if offsets is not None and counts is not None and len(offsets) == len(counts):
            used = counts > 0
            if used.any():
                end = max(end, int((offsets[used] + counts[used]).max()))
    return end


def _uint_array(f: BinaryIO, layout: _Layout, kind: int, count: int, field: bytes
                ) -> np.ndarray | None:
    """An unsigned integer tag value (inline or out of line), or None if it cannot be read."""
    if kind not in _UINT_TYPES:
        return None
    dtype = np.dtype(_UINT_TYPES[kind]).newbyteorder(layout.order)
    size = dtype.itemsize * count
    if size <= len(field):
        raw = field[:size]
    else:
        start = struct.unpack(layout.offset, field)[0]
        if start + size > layout.size:
            return None
        f.seek(start)
        raw = f.read(size)
    return np.frombuffer(raw, dtype).astype(np.uint64)
