"""What both Zarr back ends share, wherever the store lives: the layout, the chunk writes,
their checksums and completion records, the lock checks and the viewer pyramids (see
:mod:`tilerun.sinks.layout` for the layout).

:class:`~tilerun.sinks.local.ZarrSink` (a local folder, staged then renamed) and
:class:`~tilerun.sinks.object_store.ObjectStoreSink` (object storage, written in place) differ
only in where Zarr writes (:meth:`ZarrStoreSink.target`), how they lock, keep resume carries,
hand their store to the pyramid writers (:meth:`ZarrStoreSink.pyramid_store`) and publish.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr

from tilerun.errors import OutputError, OutputWarning, ignoring
from tilerun.geometry import GeoRef, Window
from tilerun.sinks import integrity
from tilerun.sinks.base import Sink
from tilerun.sinks.layout.store import DONE, RECORD, RECORDS, read_chunks_done
from tilerun.sinks.layout.variables import OutputLayout, encoding, skeleton
from tilerun.sinks.lease import LOCK_NAME, Lease
from tilerun.sinks.pyramids.ngff import write_pyramids
from tilerun.sinks.pyramids.request import PyramidRequest
from tilerun.sinks.pyramids.stores import Store


class ZarrStoreSink(Sink):
    """Writes chunk windows straight into the Zarr arrays (no locks: one writer per chunk)."""

    def __init__(self, name: str, overwrite: bool = False) -> None:
        self.name = name
        self.overwrite = overwrite
        self._layout: OutputLayout | None = None
        self._arrays: dict[str, Any] | None = None
        #: this run's lock token (checked before every chunk write, also in worker processes)
        self.token: str | None = None
        #: the chunks kept from an earlier run (resume), verified, with their writers' ids
        self.kept: dict[tuple[int, int], int] = {}
        #: the kept chunks that failed verification and are written again (for a note)
        self.redone: list[integrity.BadChunk] = []

    @property
    def layout(self) -> OutputLayout:
        if self._layout is None:
            raise RuntimeError(f"{self.name}: the sink is used before open()")
        return self._layout

    def open(self, layout: OutputLayout, georef: GeoRef | None, attrs: dict[str, Any],
             resume: bool = False) -> None:
        """See :meth:`create`."""
        self._layout = layout
        self.create(georef, attrs, resume)

    @abstractmethod
    def create(self, georef: GeoRef | None, attrs: dict[str, Any], resume: bool = False) -> None:
        """Lock the destination, then resume it or write the store's skeleton."""

    @abstractmethod
    def target(self) -> Any:
        """Where Zarr writes: a folder, or an object store."""

    @abstractmethod
    def lease(self) -> Lease:
        """A handle on the store's lock (not taken): to check who holds it."""

    @abstractmethod
    def pyramid_store(self) -> Store:
        """The store being written, as the NGFF pyramid writers take it (a folder or an
        object-store prefix): the sink owns its store, so it picks the kind."""

    def add_pyramids(self, pyramids: PyramidRequest | None) -> bool:
        """Write the requested viewer pyramids into the unfinished store (before its
        ``complete`` flag); whether any were asked for."""
        if pyramids is None or not pyramids.kinds:
            return False
        write_pyramids(self.pyramid_store(), pyramids)
        return True

    def took(self, lock: Lease) -> None:
        """Record the lock this run took: its token marks every chunk it writes."""
        self.lock = lock
        self.token = lock.token

    def _write_skeleton(self, georef: GeoRef | None, attrs: dict[str, Any]) -> None:
        dataset = skeleton(self.layout, georef)
        dataset.attrs.update({RECORD: {**attrs, "complete": False}})
        # mode "a" into the emptied folder: "w" would clear it, the lock file with it, and "w-"
        # takes the lock file for existing data.
        try:
            # Zarr notes the lock file is not one of its own
            with ignoring(f"Object at {LOCK_NAME} is not"):
                dataset.to_zarr(
                    self.target(), mode="a", compute=False, zarr_format=self.layout.zarr_format,
                    encoding=encoding(self.layout), consolidated=False,
                )
            records = zarr.open_group(self.target(), mode="r+").create_group(RECORDS)
            v3 = self.layout.zarr_format == 3  # v2 arrays have no dimension names
            records.create_array(
                DONE.split("/")[-1], shape=self.layout.chunk_grid, chunks=(1, 1), dtype="uint8",
                fill_value=0, attributes={"description": "1 once the output chunk is written"},
                dimension_names=("chunk_y", "chunk_x") if v3 else None,
            )
            integrity.create_sums(records, self.layout.chunk_grid, self.layout.variables, v3)
        except OSError as err:
            raise OutputError(self.name, f"cannot write the store ({err.strerror or err})") \
                from err

    def done(self) -> np.ndarray:
        """Which chunks are written (bool, the chunk grid's shape)."""
        done = read_chunks_done(self.target())
        return done if done is not None else np.zeros(self.layout.chunk_grid, bool)

    def completed(self) -> frozenset[tuple[int, int]]:
        rows, cols = np.nonzero(self.done())
        return frozenset((int(i), int(j)) for i, j in zip(rows, cols, strict=True))

    def _array(self, name: str) -> Any:
        """The open array; every chunk is written once and is rarely all fill, so Zarr's check
        for all-fill chunks (a full extra pass over the data, to skip storing them) is off."""
        if self._arrays is None:
            group = zarr.open_group(self.target(), mode="r+")
            self._arrays = {
                v: group[v].with_config({"write_empty_chunks": True})  # type: ignore[union-attr]
                for v in (*self.layout.variables, DONE, integrity.SUMS)
            }
        return self._arrays[name]

    def write(self, window: Window, outputs: Mapping[str, np.ndarray]) -> None:
        """Write the chunk's data, then (only then) its completion record.

        ``outputs`` holds every variable of the layout (see :meth:`Sink.write`); logits are
        cast to the layout's dtype here, the other variables are stored as given.
        """
        missing = [v for v in self.layout.variables if v not in outputs]
        if missing:
            raise ValueError(f"no data for output variable(s) {missing} at {window}")
        self.check_lock()
        ys, xs = window.slices()
        stored = {}
        for name in self.layout.variables:
            data = outputs[name]
            if name == "logits":
                data = data.astype(self.layout.logits_dtype, copy=False)
            stored[name] = data
            target = self._array(name)
            if data.ndim == 3:
                target[:, ys, xs] = data
            else:
                target[ys, xs] = data
        z = self.layout.chunk
        index = window.y // z, window.x // z
        writer = integrity.writer_id(self.token) if self.token else 0
        self._array(integrity.SUMS)[index] = integrity.row(writer, stored, self.layout.variables)
        self._array(DONE)[index] = 1

    def check_lock(self) -> None:
        """Stop the run when its lock is no longer its own (removed by a clean-up script, or
        taken over by another run): it must not write into, or publish, a store it no longer
        owns."""
        if self.token is None:
            return
        if not self.lease().holds(self.token):
            raise LockLost(self.name, "lost its lock while writing (the lock was removed, or "
                           "another run took it over); stopped, nothing published: make sure "
                           "no other run writes here, then run again with --resume")

    def verify_kept(self) -> None:
        """Resume: read back every chunk marked done, check it against its checksum, and mark
        the bad ones not done, so that they are written again (see
        :mod:`tilerun.sinks.integrity`). Keeps the good ones' writers for the publish check."""
        done = self.done()
        indices = [(int(i), int(j)) for i, j in np.argwhere(done)]
        sums = integrity.read_sums(self.target())
        if sums is None:  # a store from a tilerun before checksums: its chunks are redone
            records = zarr.open_group(self.target(), mode="r+")[RECORDS]
            integrity.create_sums(records, self.layout.chunk_grid, self.layout.variables,
                                  self.layout.zarr_format == 3)
        bad = integrity.verify(self.target(), indices, self.layout.chunk, sums)
        redo = sorted({b.index for b in bad})
        if redo:
            marks = self._array(DONE)
            for index in redo:
                marks[index] = 0
            self.redone = bad
            warnings.warn(f"{self.name}: {len(redo)} chunk(s) kept from the interrupted run "
                          f"failed verification and are written again: "
                          f"{integrity.describe(bad)}", OutputWarning, stacklevel=2)
        rows = sums[0] if sums is not None else None
        self.kept = {ij: int(rows[ij][0]) for ij in indices if ij not in set(redo)} \
            if rows is not None else {}
        self._arrays = None

    def check_publishable(self) -> None:
        """Before the store is made complete: the lock is still ours, every chunk is written
        and checksummed, and each was written by this run or kept (verified) from an earlier
        one."""
        self.check_lease()
        self.check_lock()
        sums = integrity.read_sums(self.target())
        writer = integrity.writer_id(self.token) if self.token else 0
        why = integrity.unpublishable(self.done(), sums[0] if sums else None, writer, self.kept)
        if why is not None:
            raise OutputError(self.name, f"not published: {why}; run again with --resume")

    def update_record(self, update: dict[str, Any]) -> None:
        """Merge ``update`` into the run's record (one write of the root metadata)."""
        group = zarr.open_group(self.target(), mode="r+")
        attrs = dict(group.attrs[RECORD])  # type: ignore[arg-type]
        group.attrs[RECORD] = {**attrs, **update}

    def check_lease(self) -> None:
        """Refuse to publish after another run took the lock over (our lease went stale)."""
        lock = getattr(self, "lock", None)
        if lock is not None and lock.lost:
            raise OutputError(self.name, "another run took its lock over while it wrote (its "
                              "lease went stale); run again with --resume")

    def abort(self) -> None:
        """The run failed: give up the lock; the staging store stays, for ``--resume``."""
        self.release()

    def release(self) -> None:
        """Give up the lock (after finishing, or when the run fails)."""
        lock = getattr(self, "lock", None)
        if lock is not None:
            lock.release()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None, "lock": None, "kept": {}, "redone": []}


class LockLost(OutputError):
    """The run's lock is gone or another run's: it stops and publishes nothing."""


def carry_name(source: tuple[int, int], target: tuple[int, int]) -> str:
    return f"{source[0]}.{source[1]}-{target[0]}.{target[1]}.npy"
