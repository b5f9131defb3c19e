"""The output store's layout on disk, known in this one place.

An output ``OUT.zarr`` is a Zarr v3 group. While a run writes it, it lives at
``OUT.zarr.partial`` (:data:`STAGING_SUFFIX`) and is renamed to ``OUT.zarr`` when complete,
so nothing partial ever sits at the requested path. Inside:

* the root attribute :data:`RECORD` (``tilerun``): the run's options, model, its ``job`` (what
  ``--resume`` compares, see :mod:`tilerun.sinks.layout.job_record`) and fingerprint and, once
  finished, its summary and ``complete: true``;
* ``tilerun/chunks_done`` (:data:`DONE`): one uint8 per output chunk, 1 once written;
* ``tilerun/chunk_sums``: per chunk, its writer's id and a CRC-32C of each variable's data,
  written before its ``chunks_done`` mark (see :mod:`tilerun.sinks.integrity`);
* ``tilerun.carry/`` (:data:`CARRY`, outside the Zarr hierarchy): partial sums finished chunks
  send to unfinished ones, for ``--resume``; removed on completion;
* ``tilerun.lock`` (:data:`~tilerun.sinks.lease.LOCK_NAME`): the single writer's lock.

An output in object storage (``s3://bucket/scene.zarr``, see :mod:`tilerun.sinks.objects`)
has the same layout written in place, as there is no rename: its ``complete`` flag, written
last, is what tells a finished store from an unfinished one (:class:`ObjectOutputStore`).

The Zarr sinks write this layout; ``tilerun info``, quicklooks and pyramids read it through
:func:`output_store` and :func:`run_record`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from tilerun.classes.labels import labels_from_logits
from tilerun.classes.names import label_names, label_values
from tilerun.errors import InputError, first_line
from tilerun.sinks.layout.codes import LABEL_FILL, PROBABILITY_FILL, PROBABILITY_SCALE
from tilerun.sinks.lease import ObjectLock, RunLock
from tilerun.sinks.objects import ObjectLocation, object_url

STAGING_SUFFIX = ".partial"
RECORD = "tilerun"
RECORDS = "tilerun"
DONE = f"{RECORDS}/chunks_done"
CARRY = "tilerun.carry"


#: The root metadata document of a Zarr v3 and a Zarr v2 group.
GROUP_DOCUMENTS = ("zarr.json", ".zgroup")


def is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in GROUP_DOCUMENTS)


def run_record(group: Any) -> dict[str, Any]:
    """The run's record of an open group (empty when it has none)."""
    record = group.attrs.get(RECORD)
    return dict(record) if isinstance(record, dict) else {}


def read_record(target: Any, name: object) -> dict[str, Any]:
    """The run's record of the store ``target`` (a path or Zarr store); a one-line error naming
    ``name`` for a store tilerun cannot read (corrupt metadata) or did not write."""
    try:
        group = zarr.open_group(target, mode="r")
    except (ValueError, KeyError, TypeError, OSError) as err:  # JSON and Zarr errors
        raise InputError(name, f"its Zarr metadata cannot be read ({first_line(err)})") from err
    if not isinstance(group.attrs.get(RECORD), dict):
        raise InputError(name, "is a Zarr store, but not one tilerun wrote (it has no "
                         f"{RECORD!r} attributes)")
    return run_record(group)


def read_chunks_done(target: Any) -> np.ndarray | None:
    """Which output chunks of the store ``target`` are written (bool, the chunk grid), None
    without records."""
    try:
        done = zarr.open_array(target, path=DONE, mode="r")
    except (FileNotFoundError, KeyError, ValueError):
        return None
    return np.asarray(done[:]).astype(bool)


def open_finished(out: str | Path) -> tuple[Any, dict[str, Any]]:
    """The Zarr group (read-only) and run record of a *complete* output, local or in object
    storage: what exports, reports and comparisons read (quicklooks read any store). A one-line
    :class:`InputError` naming ``out`` for anything else: no output there ("no tilerun
    output"), an unfinished run's store ("unfinished"), corrupt metadata, or a Zarr store
    tilerun did not write ("not one tilerun wrote")."""
    output = output_store(out)
    if isinstance(output, OutputStore) and output.path.name.endswith(STAGING_SUFFIX) \
            and output.path.exists():
        raise InputError(out, "is an unfinished run's store; finish it with `tilerun predict "
                         "… --resume` first")
    located = output.located()
    record = output.record(located)
    if output.is_staging(located) or not record.get("complete"):
        raise InputError(out, "is unfinished (its run did not complete); finish it with "
                         "`tilerun predict … --resume` first")
    try:
        return zarr.open_group(located, mode="r"), record
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(out, f"its Zarr metadata cannot be read ({first_line(err)})") from err


def read_labels(group: Any, rows: slice, cols: slice) -> np.ndarray:
    """uint8 labels of an output's window, :data:`~tilerun.sinks.layout.codes.LABEL_FILL` where
    nodata: its ``labels``, else the argmax of its logits (``logit > 0`` for one class), else
    of its probability codes (``p > ½`` for one class), as the run labels."""
    names = set(group.array_keys())
    if "labels" in names:
        return np.asarray(group["labels"][rows, cols]).astype(np.uint8, copy=False)
    if "logits" in names:
        logits = np.asarray(group["logits"][:, rows, cols], np.float32)
        return labels_from_logits(logits, np.asarray(~np.isnan(logits).any(axis=0)), LABEL_FILL)
    codes = np.asarray(group["probabilities"][:, rows, cols], np.float32)
    valid = codes[0] != PROBABILITY_FILL
    if codes.shape[0] == 1:  # one class: its probability against ½, as a logit against 0
        codes -= PROBABILITY_SCALE / 2
    return labels_from_logits(codes, valid, LABEL_FILL)


def class_names(group: Any, record: dict[str, Any]) -> tuple[str, ...]:
    """One name per label value: the record's class names (the model's, spaces kept), else
    the labels' CF ``flag_meanings``, else ``class k``; a one-class model's labels 0 and 1
    are ``not X`` and ``X``."""
    arrays = set(group.array_keys())
    classes = None
    for name in ("logits", "probabilities"):
        if name in arrays:
            classes = int(group[name].shape[0])
    names = record.get("class_names")
    names = [str(n) for n in names] if isinstance(names, list | tuple) and names else None
    meanings = []
    if "labels" in arrays:
        meanings = str(group["labels"].attrs.get("flag_meanings", "")).split()
    if classes is None:
        classes = len(names) if names else (len(meanings) or 1)
        if classes == 2 and meanings[:1] == [f"not_{meanings[-1]}"]:
            classes = 1
    if names is None or len(names) != classes:
        names = [m.replace("_", " ") for m in meanings] if meanings else None
        if classes == 1 and names is not None and len(names) == 2:
            names = names[1:]
    if names is None or len(names) != classes:
        names = list(label_names(None, classes))
    return label_names(names, label_values(classes))


def output_store(out: str | Path) -> OutputStore | ObjectOutputStore:
    """The store reader for an output path or object-store URL."""
    url = object_url(out)
    return ObjectOutputStore(ObjectLocation(url)) if url else OutputStore(Path(out))


def open_target(out: str | Path, read_only: bool = True) -> Any:
    """What Zarr and xarray open for ``out``: the path, or an object store."""
    url = object_url(out)
    return ObjectLocation(url).zarr_store(read_only=read_only) if url else Path(out)


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

    def is_staging(self, located: Path) -> bool:
        """Whether :meth:`located` found the unfinished staging store, not the output."""
        return located != self.path

    def record(self, path: Path) -> dict[str, Any]:
        """The run's record at ``path`` (see :func:`read_record`)."""
        return read_record(path, path)

    @staticmethod
    def chunks_done(path: Path) -> np.ndarray | None:
        """Which output chunks are written (bool, the chunk grid), None without records."""
        return read_chunks_done(path)

    def holder(self) -> dict[str, object] | None:
        """The live run writing the staging store, if any."""
        return RunLock(self.staging).holder()


@dataclass(frozen=True)
class ObjectOutputStore:
    """An output in object storage, read in place: unfinished until its record says
    ``complete``, which the run writes last."""

    location: ObjectLocation

    @property
    def path(self) -> str:
        return self.location.url

    def exists(self) -> bool:
        return any(self.location.get(name) is not None for name in GROUP_DOCUMENTS)

    def completed(self) -> dict[str, Any] | None:
        """The record of a complete output, else None."""
        if not self.exists():
            return None
        try:
            record = run_record(zarr.open_group(self.location.zarr_store(True), mode="r"))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return record if record.get("complete") else None

    def located(self) -> Any:
        """The Zarr store to report on; a one-line error when there is none."""
        if not self.exists():
            raise InputError(self.path, "no tilerun output here (no zarr.json)")
        return self._zarr

    @property
    def _zarr(self) -> Any:
        return self.location.zarr_store(read_only=True)

    @staticmethod
    def is_staging(located: Any) -> bool:
        """Never: written in place, the record alone says whether it is done."""
        return False

    def record(self, target: Any) -> dict[str, Any]:
        return read_record(target, self.path)

    @staticmethod
    def chunks_done(target: Any) -> np.ndarray | None:
        return read_chunks_done(target)

    def holder(self) -> dict[str, object] | None:
        return ObjectLock(self.location).holder()
