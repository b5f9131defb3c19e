"""Where an export goes: checked before any work, written under a temporary name, renamed.

An export may take minutes on a large output and may be interrupted; a half-written GeoTIFF or
GeoPackage at the requested name would look finished to the next program that opens it. So
every export writes ``.NAME.tilerun-XXXXXXXX.EXT`` beside ``FILE`` (hidden, and with ``FILE``'s
extension, which GDAL drivers such as GPKG insist on) and renames it onto ``FILE`` only once
complete; a failure removes it and every sidecar GDAL made for it (``-journal``,
``.aux.xml``, ``.ovr.tmp`` …). An existing ``FILE`` is replaced only when ``overwrite`` is
asked for, and then only by the finished export (``os.replace``, atomic on one file system).
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tilerun.errors import InputError, OutputError, OutputExistsError
from tilerun.writing import disk_full, unwritable, write_problem

TEMPORARY_TAG = ".tilerun-"


@dataclass(frozen=True)
class ExportTarget:
    """The file an export writes, and whether it may replace an existing one."""

    path: Path
    overwrite: bool = False

    def check(self) -> None:
        """Refuse, before any work, a target that exists (without ``overwrite``), is a
        folder, or lies in a folder that is missing or cannot be written."""
        path, parent = self.path, self.path.parent
        if path.is_dir():
            raise OutputError(path, "is a folder, not a file")
        if path.exists() and not self.overwrite:
            raise OutputExistsError(path, "already exists; pass --overwrite to replace it")
        if not parent.exists():
            raise OutputError(path, f"parent folder {parent} does not exist")
        if not parent.is_dir():
            raise OutputError(path, f"its parent {parent} is a file, not a folder")
        problem = unwritable(parent)
        if problem:
            raise OutputError(path, problem)

    def temporary(self, role: str = "") -> Path:
        """A fresh hidden name beside the target, with the target's extension."""
        token = uuid.uuid4().hex[:8]
        name = f".{self.path.stem}{TEMPORARY_TAG}{role}{token}{self.path.suffix}"
        return self.path.with_name(name)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Path]:
        """Yield a temporary path to write; rename it onto the target when the block ends
        normally, remove it (and its sidecars) when it raises or is interrupted."""
        self.check()
        temporary = self.temporary()
        try:
            yield temporary
            if not temporary.is_file():
                raise OutputError(self.path, "the export wrote nothing")
            self._check_complete(temporary)
            if self.path.exists() and not self.overwrite:  # appeared while we were writing
                raise OutputExistsError(self.path, "appeared during the export; not replaced")
            os.replace(temporary, self.path)
        except OSError as err:
            raise OutputError(self.path, write_problem(err, self.path.parent)) from err
        except OutputError as err:  # a writer's own message: unless the disk filled up
            full = disk_full(self.path.parent) or _enospc_behind(err)
            if full is None:
                raise
            raise OutputError(self.path, f"{full}; nothing was written: make room, then "
                              "export again") from err
        finally:
            remove_with_sidecars(temporary)

    def _check_complete(self, temporary: Path) -> None:
        """Refuse a TIFF whose header points past its end: GDAL reports a write that failed
        (a full disk) as a log line only, and the file looks finished."""
        from tilerun.sources.guards import check_tiff_complete

        if temporary.suffix.lower() not in (".tif", ".tiff"):
            return
        try:
            check_tiff_complete(temporary, str(self.path))
        except InputError as err:
            raise OutputError(self.path, f"the written file is incomplete ({err.problem})") \
                from None


def _enospc_behind(err: BaseException) -> str | None:
    """"the disk is full" when an error down ``err``'s chain is ENOSPC (a writer that wrapped
    it in its own words)."""
    cause: BaseException | None = err
    for _ in range(10):
        if cause is None:
            return None
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return f"the disk is full ({cause.strerror or 'no space left'})"
        cause = cause.__cause__ or cause.__context__
    return None


def remove_with_sidecars(path: Path) -> None:
    """Remove ``path`` and the files GDAL keeps beside it (names that start with its name)."""
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            if entry.name.startswith(path.name) and entry.is_file():
                entry.unlink(missing_ok=True)
