"""The Zarr sink for object storage: the same store, written in place, finished by a flag.

``tilerun predict scene.tif -o s3://bucket/scene.zarr`` (or ``--workers N`` on a cluster with
no shared file system) writes every chunk straight into the bucket from the worker that
computed it. Object stores cannot rename, so the local sink's "stage, then rename" becomes:

1. take the lease ``tilerun.lock`` (created only if absent; see :class:`ObjectLock`) before
   anything else is written, so of two runs started together the second is refused;
2. write the store's metadata with ``complete: false`` in its ``tilerun`` record;
3. write each chunk's data, then its checksums (:mod:`tilerun.sinks.integrity`), then its
   ``tilerun/chunks_done`` record, each after checking the lease is still this run's;
4. delete the resume carry objects, consolidate the metadata, and write ``complete: true``
   **last** — the one write that makes the store finished.

A reader (``tilerun info``, :func:`~tilerun.sinks.layout.store.output_store`, ``--resume``)
always tells an unfinished store from a finished one. ``--resume`` continues an unfinished
store of the same run; without it an unfinished store is started afresh. ``--overwrite`` of an
existing output writes the new store beside it (``<url>.partial``) and switches only once that
one is complete (see *Replacing an output* below): a failed run leaves the old output as it
was.

Replacing an output
-------------------

Object stores cannot rename, so ``--overwrite`` of an existing output at ``s3://b/out.zarr``
writes the new store beside it, at ``s3://b/out.zarr.partial`` (:func:`staging_url`), and
switches only once that store is complete (:func:`switch`):

1. the old store's record is set to ``complete: false`` with ``replacing: <staging URL>``, so
   that no reader takes a half-switched store for a finished one;
2. the old store's objects are deleted, but its root metadata;
3. the new store's objects are copied in (a server-side copy each), its root metadata last —
   the write that makes the output complete again;
4. the staging store is deleted.

A failed run leaves the old output as it was (and the unfinished staging store for
``--resume --overwrite``). A switch cut short is finished by the next run on the URL
(:func:`recover`), from the complete staging store.
"""

from __future__ import annotations

import concurrent.futures
import io
import warnings
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import zarr

from tilerun.errors import OutputError, OutputExistsError, OutputWarning, first_line, ignoring
from tilerun.extras import store_errors
from tilerun.geometry import GeoRef
from tilerun.sinks.layout.job_record import differences, same_job
from tilerun.sinks.layout.store import CARRY, GROUP_DOCUMENTS, RECORD, STAGING_SUFFIX, run_record
from tilerun.sinks.lease import LEASE_KEY, LOCK_NAME, ObjectLock
from tilerun.sinks.objects import ObjectLocation, StoreUnavailable
from tilerun.sinks.pyramids.request import PyramidRequest
from tilerun.sinks.pyramids.stores import BucketStore
from tilerun.sinks.zarr_sink import ZarrStoreSink, carry_name


class ObjectStoreSink(ZarrStoreSink):
    """Writes the output store in place at an object-store URL (see the module docstring)."""

    def __init__(self, url: str, overwrite: bool = False) -> None:
        super().__init__(url, overwrite)
        #: the output's URL, and where the store is written: there, or (replacing an output)
        #: beside it, see :func:`switch`
        self.final = ObjectLocation(url)
        self.location = self.final

    def target(self) -> Any:
        return self.location.zarr_store()

    def _existing(self, where: ObjectLocation | None = None) -> dict[str, Any] | None:
        """The record of the store at the URL (or ``where``; ``{}`` if it is not tilerun's),
        None if there is no store; refuses a prefix holding other objects."""
        location = where or self.final
        try:
            if not any(location.get(name) is not None for name in GROUP_DOCUMENTS):
                stray = [k for k in location.list_keys() if k != LEASE_KEY]
                if stray:
                    raise OutputError(location.url, f"holds objects that are not a Zarr store "
                                      f"(e.g. {stray[0]}); refusing to write there")
                return None
            return run_record(zarr.open_group(location.zarr_store(True), mode="r"))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise OutputError(self.name, f"cannot read it ({first_line(err)})") from err
        except store_errors() as err:
            raise _store_error(self.name, err) from err

    def check(self) -> None:
        """Refuse an unreachable bucket, a complete output or a Zarr store tilerun did not
        write without ``--overwrite``, and a prefix holding something else — before any work.
        (An unfinished tilerun store is resumed or restarted, as a local ``.partial`` is.)
        A replacement a kill cut short is finished first."""
        try:
            self._check_not_inside_a_store()
            recover(self.name)
        except store_errors() as err:
            raise _store_error(self.name, err) from err
        record = self._existing()
        if record is None or self.overwrite:
            return
        if not record:
            raise OutputExistsError(self.name, "is a Zarr store tilerun did not write; pass "
                                    "--overwrite to replace it")
        if record.get("complete"):
            raise OutputExistsError(self.name, "already exists; pass --overwrite to replace it")

    def _check_not_inside_a_store(self) -> None:
        """Refuse a URL inside another Zarr hierarchy (``s3://b/host.zarr/labels``)."""
        parts = urlsplit(self.name)
        folders = [p for p in parts.path.split("/") if p]
        for depth in range(len(folders) - 1, 0 if not parts.netloc else -1, -1):
            parent = f"{parts.scheme}://{parts.netloc}/{'/'.join(folders[:depth])}".rstrip("/")
            location = ObjectLocation(parent)
            try:
                found = any(location.get(name) is not None for name in GROUP_DOCUMENTS)
            except StoreUnavailable as err:  # named after the output, not the parent probed
                raise StoreUnavailable(self.name, err.problem) from err
            if found:
                raise OutputError(self.name, f"is inside the Zarr store {parent}; an output "
                                  "must not replace part of another store: choose a URL "
                                  "outside it")

    def create(self, georef: GeoRef | None, attrs: dict[str, Any], resume: bool = False) -> None:
        """Lock, then keep (``resume``, same run) or clear what is there, then write the
        skeleton; see the module docstring. An output to replace is kept until the new one is
        complete: the new one is written beside it."""
        self.check()
        old = self._existing() if self.overwrite else None
        beside = staging_url(self.name) if old is not None and (
            not old or old.get("complete")) else None
        if beside is not None:
            self.location = ObjectLocation(beside)
        lock = ObjectLock(self.location)
        try:
            lock.acquire(self.name)
        except store_errors() as err:
            raise _store_error(self.name, err) from err
        self.took(lock)
        try:
            self.check()  # again: a run may have just finished
            record = self._existing(self.location)
            if record is not None and not record.get("complete") and resume:
                if same_job(record, attrs):
                    self.verify_kept()
                    return
                raise OutputError(self.name, f"was written by a different run "
                                  f"({differences(record, attrs)}); drop --resume to start "
                                  "afresh")
            if record is not None:
                self._clear()
            self._write_skeleton(georef, attrs)
        except BaseException:
            self.release()
            raise

    def lease(self) -> ObjectLock:
        return ObjectLock(self.location)

    def unfinished(self) -> str:
        return self.location.url

    def _clear(self) -> None:
        """Delete the old store, all but our lease."""
        self.location.delete_all(keep=LOCK_NAME + "/")

    def keep_carry(
        self, source: tuple[int, int], target: tuple[int, int], data: np.ndarray
    ) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(data, np.float32))
        self.location.put(f"{CARRY}/{carry_name(source, target)}", buffer.getvalue())

    def carry(self, source: tuple[int, int], target: tuple[int, int]) -> np.ndarray | None:
        found = self.location.get(f"{CARRY}/{carry_name(source, target)}")
        if found is None:
            return None
        try:
            return np.load(io.BytesIO(found.data))
        except (OSError, ValueError, EOFError):
            return None

    def pyramid_store(self) -> BucketStore:
        return BucketStore(self.location.url)

    def finalize(self, summary: dict[str, Any], pyramids: PyramidRequest | None = None) -> None:
        """Drop the carry objects, record the summary, add the requested viewer pyramids,
        consolidate, then write ``complete: true`` last."""
        try:
            self.check_publishable()
            self.location.delete_all(CARRY)
            if pyramids is not None and pyramids.kinds:
                self.update_record({**summary, "complete": False})
                self.add_pyramids(pyramids)
            with ignoring("Consolidated metadata", f"Object at {LOCK_NAME} is not"):
                zarr.consolidate_metadata(self.target())
            self.check_lock()  # the token, once more, right before the flag
            self.update_record({**summary, "complete": True})
            if self.location is not self.final:
                switch(self.final, self.location)
        finally:
            self.release()


def _store_error(name: str, err: BaseException) -> OutputError:
    """An object-store failure (unreachable endpoint, missing bucket, credentials) in one line."""
    return OutputError(name, f"the object store refused or failed ({first_line(err)})")


#: root documents, copied last (Zarr v2 keeps the attributes and consolidated metadata apart)
ROOT_DOCUMENTS = (*GROUP_DOCUMENTS, ".zattrs", ".zmetadata")
COPY_THREADS = 16


def staging_url(url: str) -> str | None:
    """Where the new store of ``url`` is written: its ``.partial`` sibling; None for a
    bucket's root or an in-process ``memory://`` store, which have none."""
    parts = urlsplit(url)
    if parts.scheme == "memory" or not parts.path.strip("/"):
        return None
    return url + STAGING_SUFFIX


def _complete(location: ObjectLocation) -> bool:
    if not any(location.get(name) is not None for name in GROUP_DOCUMENTS):
        return False
    try:
        return bool(run_record(zarr.open_group(location.zarr_store(True), mode="r"))
                    .get("complete"))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def switch(final: ObjectLocation, staging: ObjectLocation) -> None:
    """Replace the store at ``final`` by the complete one at ``staging`` (module docstring)."""
    if any(final.get(name) is not None for name in GROUP_DOCUMENTS):
        group = zarr.open_group(final.zarr_store(), mode="r+")
        record = run_record(group)
        group.attrs[RECORD] = {**record, "complete": False, "replacing": staging.url}
        final.delete_all(keep=LOCK_NAME + "/")
    keys = [k for k in staging.list_keys() if not k.startswith(LOCK_NAME + "/")]
    head, _, name = final.url.rpartition("/")
    parent = ObjectLocation(head)
    source = staging.url.rpartition("/")[2]

    def copy(key: str) -> None:
        import obstore

        obstore.copy(parent.store, f"{source}/{key}", f"{name}/{key}")

    first = [k for k in keys if k not in ROOT_DOCUMENTS]
    with concurrent.futures.ThreadPoolExecutor(COPY_THREADS) as pool:
        list(pool.map(copy, first))
    for key in keys:
        if key in ROOT_DOCUMENTS:
            copy(key)
    staging.delete_all(keep=LOCK_NAME + "/")


def recover(url: str) -> None:
    """Finish a switch a kill cut short: a complete staging store no live run holds is
    switched in, with a note."""
    staged = staging_url(url)
    if staged is None:
        return
    staging = ObjectLocation(staged)
    try:
        if not _complete(staging) or ObjectLock(staging).holder() is not None:
            return
    except StoreUnavailable as err:  # named by the output the user gave
        raise StoreUnavailable(url, err.problem) from err
    switch(ObjectLocation(url), staging)
    staging.delete_all()
    warnings.warn(f"{url}: finished replacing it by {staged}, a complete run whose switch was "
                  "cut short", OutputWarning, stacklevel=2)
