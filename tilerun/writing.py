"""Why a file cannot be written, in one line: a full disk, a quota, a read-only file system.

Writers rarely say so themselves: GDAL reports a full disk as "Cannot write feature" or only as
a log line, SQLite as "no such table". The exports and the quicklook ask here before any work
(:func:`unwritable`) and after a failed write (:func:`write_problem`, :func:`disk_full`).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

#: Free space below which a failed write is taken for a full disk (bytes): a writer's error
#: rarely says so (GDAL: "Cannot write feature", SQLite: "no such table").
FULL_BELOW = 1 << 20


def disk_full(folder: Path) -> str | None:
    """"the disk is full (… free in FOLDER)" when the file system of ``folder`` has almost no
    room left, else None."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    free = stats.f_bavail * stats.f_frsize
    if free >= FULL_BELOW:
        return None
    return f"the disk is full ({free // 1024:,} KiB free in {folder})"


def unwritable(folder: Path) -> str | None:
    """Why nothing can be created in ``folder`` (a read-only file system, no permission), or
    None. Asked before any work, so that a long export or quicklook does not fail at its end."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return f"folder {folder} is on a read-only file system"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {folder} is not writable"
    return None


def write_problem(err: OSError, folder: Path) -> str:
    """One line for a failed write: a full disk, a quota or a read-only file system named as
    such, with nothing left under the target's name."""
    if err.errno == errno.ENOSPC or (err.errno is None and disk_full(folder)):
        full = disk_full(folder) or f"the disk is full ({err.strerror or 'no space left'})"
        return f"{full}; nothing was written"
    if err.errno == errno.EDQUOT:
        return "the disk quota is exceeded; nothing was written"
    if err.errno == errno.EROFS:
        return f"folder {folder} is on a read-only file system"
    return f"cannot write ({err.strerror or err})"
