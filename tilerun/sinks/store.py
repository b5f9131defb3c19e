"""The output store's layout on disk, known in this one place.

An output ``OUT.zarr`` is a Zarr v3 group. While a run writes it, it lives at
``OUT.zarr.partial`` (:data:`STAGING_SUFFIX`) and is renamed to ``OUT.zarr`` when complete,
so nothing partial ever sits at the requested path. Inside:

* the root attribute :data:`RECORD` (``tilerun``): the run's options, model, fingerprint and,
  once finished, its summary and ``complete: true``;
* ``tilerun/chunks_done`` (:data:`DONE`): one uint8 per output chunk, 1 once written;
* ``tilerun.carry/`` (:data:`CARRY`, outside the Zarr hierarchy): partial sums finished chunks
  send to unfinished ones, for ``--resume``; removed on completion;
* ``tilerun.lock`` (:data:`~tilerun.sinks.lock.LOCK_NAME`): the single writer's lock.

The Zarr sink writes this layout; ``tilerun info``, quicklooks and pyramids read it through
:class:`OutputStore` and :func:`run_record`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from tilerun.errors import InputError, first_line
from tilerun.sinks.lock import RunLock

STAGING_SUFFIX = ".partial"
RECORD = "tilerun"
RECORDS = "tilerun"
DONE = f"{RECORDS}/chunks_done"
CARRY = "tilerun.carry"


def is_zarr_store(path: Path) -> bool:
    return path.is_dir() and (path / "zarr.json").is_file()


def run_record(group: Any) -> dict[str, Any]:
    """The run's record of an open group (empty when it has none)."""
    record = group.attrs.get(RECORD)
    return dict(record) if isinstance(record, dict) else {}


@dataclass(frozen=True)
class OutputStore:
    """An output path, its staging twin and what can be read from either."""

    path: Path

    @property
    def staging(self) -> Path:
        return self.path.with_name(self.path.name + STAGING_SUFFIX)

    def completed(self) -> dict[str, Any] | None:
        """The record of a complete output with no unfinished run beside it (e.g. an
        interrupted ``--overwrite``), else None: then there is nothing left to resume."""
        if not is_zarr_store(self.path) or self.staging.exists():
            return None
        try:
            record = run_record(zarr.open_group(self.path, mode="r"))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return record if record.get("complete") else None

    def located(self) -> Path:
        """The store to report on: the output if it exists, else the unfinished staging one;
        a one-line error when neither is a Zarr store."""
        path = self.path if self.path.exists() else self.staging
        if not is_zarr_store(path):
            raise InputError(self.path, "no tilerun output here (nor an unfinished .partial)")
        return path

    def record(self, path: Path) -> dict[str, Any]:
        """The run's record at ``path``; a one-line error for a store tilerun cannot read
        (corrupt metadata) or did not write."""
        try:
            group = zarr.open_group(path, mode="r")
        except (ValueError, KeyError, TypeError, OSError) as err:  # JSON and Zarr errors
            raise InputError(path, f"its Zarr metadata cannot be read ({first_line(err)})") \
                from err
        if not isinstance(group.attrs.get(RECORD), dict):
            raise InputError(path, "is a Zarr store, but not one tilerun wrote (it has no "
                             f"{RECORD!r} attributes)")
        return run_record(group)

    @staticmethod
    def chunks_done(path: Path) -> np.ndarray | None:
        """Which output chunks are written (bool, the chunk grid), None without records."""
        if not is_zarr_store(path / DONE):
            return None
        return np.asarray(zarr.open_array(path / DONE, mode="r")[:]).astype(bool)

    def holder(self) -> dict[str, object] | None:
        """The live run writing the staging store, if any."""
        return RunLock(self.staging).holder()
