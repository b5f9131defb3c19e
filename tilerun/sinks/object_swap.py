"""Replacing an output in object storage only after the new one is complete.

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
import warnings
from urllib.parse import urlsplit

import zarr

from tilerun.errors import OutputWarning
from tilerun.sinks.lock import LOCK_NAME, ObjectLock
from tilerun.sinks.objects import ObjectLocation, StoreUnavailable
from tilerun.sinks.store import GROUP_DOCUMENTS, RECORD, STAGING_SUFFIX, run_record

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
