"""The local back end of the Zarr sink: a folder, staged and renamed into place atomically.

The variables are :mod:`tilerun.sinks.layout.variables`'s, the bookkeeping beside them
:mod:`tilerun.sinks.layout.store`'s; this back end keeps them in a local folder.

Nothing partial ever sits at the requested path: the run writes into ``<out>.partial`` and
renames it to ``<out>`` when every chunk is written. ``chunks_done`` records each chunk after
its data, and ``tilerun.carry/`` (``.npy`` files, outside the Zarr hierarchy, deleted on
completion) keeps the partial sums a written chunk sends to unwritten ones, so an interrupted
run resumes without recomputing finished chunks' tiles; ``tilerun.lock`` keeps a second run out.
An existing output is replaced only when asked, only if it is a Zarr store, and only after the
new one is complete.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from tilerun.errors import OutputError, OutputExistsError, OutputWarning, ignoring
from tilerun.geometry import GeoRef
from tilerun.sinks.layout.job_record import differences, same_job
from tilerun.sinks.layout.store import (
    CARRY,
    RECORD,
    OutputStore,
    is_zarr_store,
    run_record,
)
from tilerun.sinks.lease import LOCK_NAME, RunLock
from tilerun.sinks.pyramids.request import PyramidRequest
from tilerun.sinks.pyramids.stores import LocalStore
from tilerun.sinks.zarr_sink import ZarrStoreSink, carry_name

#: where a publication moves the output it replaces, until the new one is in place
REPLACED_SUFFIX = ".replaced"


def check_output_path(path: Path, overwrite: bool) -> None:
    """Refuse an existing output unless ``overwrite``; never replace something that is not Zarr;
    refuse a path inside another Zarr store and a folder no output can be written in, before
    any work."""
    _check_not_inside_a_store(path)
    if not path.exists():
        parent = path.parent
        if not parent.exists():
            raise OutputError(path, f"parent folder {parent} does not exist")
        if not parent.is_dir():
            raise OutputError(path, f"its parent {parent} is a file, not a folder")
        _check_writable(path, parent)
        return
    if not overwrite:
        raise OutputExistsError(path, "already exists; pass --overwrite to replace it")
    if not is_zarr_store(path):
        raise OutputError(path, "exists and is not a Zarr store; refusing to replace it")


class ZarrSink(ZarrStoreSink):
    """A store in a local folder: staged at ``<out>.partial``, renamed to ``<out>`` once
    complete (see the module docstring)."""

    def __init__(self, path: str | Path, overwrite: bool = False) -> None:
        super().__init__(str(path), overwrite)
        self.path = Path(path)
        self.staging = OutputStore(self.path).staging

    def check(self) -> None:
        recover_swap(self.path)
        check_output_path(self.path, self.overwrite)

    def create(self, georef: GeoRef | None, attrs: dict[str, Any], resume: bool = False) -> None:
        """Validate the destination, lock it, and write the store's metadata and coordinates.

        The staging folder is made and locked *before* anything is written in it, so of two
        runs started at the same instant on one output, the second is refused with a clear
        message instead of colliding in Zarr. With ``resume``, an unfinished store of the same
        run (same ``fingerprint`` attribute) is kept and only its missing chunks will be
        written; one from a different run is refused rather than discarded. Without
        ``resume``, an unfinished store is started afresh.
        """
        check_output_path(self.path, self.overwrite)
        if self.staging.exists() and not self.staging.is_dir():
            raise OutputError(self.staging, "exists and is not a Zarr store; remove it first")
        fresh = not self.staging.exists()
        _make_folder(self.staging)
        lock = RunLock(self.staging)
        lock.acquire(self.path)
        self.took(lock)
        try:
            check_output_path(self.path, self.overwrite)  # again: a run may have just finished
            if not fresh and self._keep_unfinished(attrs, resume):
                self.verify_kept()
                return
            self._write_skeleton(georef, attrs)
        except BaseException:
            self.release()
            if fresh or not any(self.staging.iterdir()):
                shutil.rmtree(self.staging, ignore_errors=True)
            raise

    def _keep_unfinished(self, attrs: dict[str, Any], resume: bool) -> bool:
        """Whether an unfinished store already in the staging folder is resumed; otherwise
        its contents (not the lock just taken) are removed."""
        if any(self.staging.iterdir()) and not is_zarr_store(self.staging) and \
                not (self.staging / LOCK_NAME).is_file():
            raise OutputError(self.staging, "exists and is not a Zarr store; remove it first")
        if resume and is_zarr_store(self.staging):
            return self._same_run(attrs)
        for entry in self.staging.iterdir():
            if entry.name != LOCK_NAME:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        return False

    def _same_run(self, attrs: dict[str, Any]) -> bool:
        try:
            stored = zarr.open_group(self.target(), mode="r").attrs.get(RECORD, {})
        except (OSError, ValueError, KeyError):
            return False
        stored = stored if isinstance(stored, dict) else {}
        if same_job(stored, attrs):
            return True
        raise OutputError(self.staging, f"was written by a different run "
                          f"({differences(stored, attrs)}); drop --resume to start afresh")

    def target(self) -> Any:
        return self.staging

    def lease(self) -> RunLock:
        return RunLock(self.staging)

    def unfinished(self) -> str:
        return str(self.staging)

    def keep_carry(
        self, source: tuple[int, int], target: tuple[int, int], data: np.ndarray
    ) -> None:
        """One ``.npy`` file per (source, target) pair in ``<staging>/tilerun.carry``, outside
        the Zarr hierarchy: they are temporary (deleted on completion), and a plain file costs
        ~1 ms where a Zarr array cost 15 ms of CPU (its metadata, codecs and async I/O)."""
        folder = self.staging / CARRY
        folder.mkdir(exist_ok=True)
        np.save(folder / carry_name(source, target), np.ascontiguousarray(data, np.float32))

    def carry(self, source: tuple[int, int], target: tuple[int, int]) -> np.ndarray | None:
        try:
            return np.load(self.staging / CARRY / carry_name(source, target))
        except (OSError, ValueError, EOFError):  # absent, or cut short by a kill
            return None

    def pyramid_store(self) -> LocalStore:
        return LocalStore(self.staging)

    def finalize(self, summary: dict[str, Any], pyramids: PyramidRequest | None = None) -> None:
        """Add the requested viewer pyramids to the staging store, mark it complete, publish.

        The lock is held until the store is published (a second run must not take the
        staging folder over between the two), and given up whatever happens: a failed pyramid
        step must not leave it held for the rest of the process, nor a store that says
        ``complete`` (it stays unfinished and resumable).
        """
        try:
            self.check_publishable()
            shutil.rmtree(self.staging / CARRY, ignore_errors=True)  # only resume needed them
            self.update_record(summary)
            self.add_pyramids(pyramids)
            self.update_record({"complete": True})
            # Consolidated metadata is a Zarr v3 extension; xarray opens faster with it.
            with ignoring("Consolidated metadata", f"Object at {LOCK_NAME} is not"):
                zarr.consolidate_metadata(self.staging)
            self.check_lock()  # the token, once more, right before the switch
            self._publish()
        finally:
            self.release()
            (self.path / LOCK_NAME).unlink(missing_ok=True)  # the lock moved with the folder

    def _publish(self) -> None:
        """Rename the staging store to the output; an output it replaces goes only after."""
        old = self.path.with_name(self.path.name + REPLACED_SUFFIX)
        if self.path.exists():
            self.path.rename(old)
        self.staging.rename(self.path)
        if old.exists():
            shutil.rmtree(old)


def _check_not_inside_a_store(path: Path) -> None:
    """Refuse an output inside a Zarr hierarchy (``host.zarr/labels``): writing or replacing
    it would change another store (an array of a finished output, say) behind its back."""
    for parent in path.absolute().parents:
        if is_zarr_store(parent):
            raise OutputError(path, f"is inside the Zarr store {parent}; an output must not "
                              "replace part of another store: choose a path outside it")


def recover_swap(path: Path) -> None:
    """Finish, or undo, the switch to a new output that a kill interrupted (its old output
    left at ``<out>.replaced``), so that a later publication does not fail on it; with a note.

    Left alone while a live run holds the staging store (it may be switching right now).
    """
    old = path.with_name(path.name + REPLACED_SUFFIX)
    staging = OutputStore(path).staging
    if not old.exists() or RunLock(staging).holder() is not None:
        return
    if path.exists():  # the new output is in place: the old one only awaited deletion
        shutil.rmtree(old)
        note = f"removed {old}, the previous output a killed run had replaced"
    elif _complete(staging):  # killed between the two renames: finish the switch
        staging.rename(path)
        (path / LOCK_NAME).unlink(missing_ok=True)
        shutil.rmtree(old)
        note = f"finished publishing {path}, whose switch from {old} a kill interrupted"
    else:  # no new output to switch to: put the old one back
        old.rename(path)
        note = f"restored {path} from {old}, left by a kill while it was being replaced"
    warnings.warn(note, OutputWarning, stacklevel=2)


def _complete(staging: Path) -> bool:
    try:
        return bool(is_zarr_store(staging) and
                    run_record(zarr.open_group(staging, mode="r")).get("complete"))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _check_writable(path: Path, folder: Path) -> None:
    """Make and remove a hidden folder in ``folder``: the one test that holds for every reason
    a folder cannot take an output (permissions, read-only or pseudo file systems like
    ``/proc``, quotas), whoever runs it."""
    try:
        probe = tempfile.mkdtemp(dir=folder, prefix=".tilerun-probe-")
    except OSError as err:
        reason = "its file system does not take new folders" if err.errno == errno.ENOENT \
            else err.strerror or str(err)
        raise OutputError(path, f"cannot write in {folder} ({reason})") from err
    os.rmdir(probe)


def _make_folder(path: Path) -> None:
    """``mkdir`` with the reason in one line: a read-only or pseudo file system (``/proc``), a
    parent that is a regular file, a full disk."""
    try:
        path.mkdir(exist_ok=True)
    except OSError as err:
        raise OutputError(path, f"cannot create the output folder ({err.strerror or err})") \
            from err
