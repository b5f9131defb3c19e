"""Where the NGFF pyramids go: the finished tilerun store they are added to.

Two kinds of store, one protocol (:class:`Store`): open the source arrays, and write a new
pyramid group so that a failure leaves nothing half-written behind.

* :class:`LocalStore`, a folder: each group is written under ``<name>.partial`` and renamed
  into place when complete (an old one it replaces goes only then), and the store's
  consolidated metadata, when it has some, is rebuilt so that it lists the new group.
* :class:`BucketStore`, a store in object storage (no rename): the group is written in place
  and deleted again if anything fails. During a run, the sink writes pyramids before the
  store's ``complete`` flag, so a reader never sees a finished store without them.
"""

from __future__ import annotations

import json
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zarr

from tilerun.errors import (
    InputError,
    OptionError,
    OutputError,
    OutputExistsError,
    first_line,
    ignoring,
)
from tilerun.sinks.layout.store import is_zarr_store, run_record
from tilerun.sinks.objects import ObjectLocation, object_url


@dataclass(frozen=True)
class Pyramid:
    """What a ``write_*_pyramid`` call wrote."""

    path: str | Path
    name: str
    shapes: tuple[tuple[int, ...], ...]
    scales: tuple[tuple[float, ...], ...]
    translations: tuple[tuple[float, ...], ...]
    dtype: str
    method: str

    @property
    def levels(self) -> int:
        return len(self.shapes)


class Store(ABC):
    """A tilerun output that pyramids are added to."""

    #: the store, for messages and :attr:`Pyramid.path`
    name: str | Path
    group: Any

    @property
    def attrs(self) -> Any:
        return self.group.attrs

    def source_array(self, variable: str, ndim: int) -> Any:
        """The stored array ``variable`` with ``ndim`` dimensions; a one-line error if not."""
        try:
            array = self.group[variable]
        except KeyError as err:
            raise InputError(self.name, f"has no array {variable!r}") from err
        if not isinstance(array, zarr.Array):
            raise InputError(self.name, f"has no array {variable!r}")
        if array.ndim != ndim:
            raise InputError(self.name,
                             f"{variable} has {array.ndim} dimensions, expected {ndim}")
        return array

    @abstractmethod
    def child(self, name: str) -> str | Path:
        """Where group ``name`` of the store is."""

    @contextmanager
    @abstractmethod
    def writing(self, name: str, overwrite: bool) -> Iterator[Any]:
        """A new, empty Zarr v3 group ``name``: kept if the block succeeds, else removed."""


def open_store(store_path: str | Path, require_complete: bool = True) -> Store:
    """The store at a path or object-store URL. A one-line error for anything but a Zarr v3
    store, and, with ``require_complete``, for a store whose run has not finished (the run
    that finishes a store writes its pyramids before flagging it complete)."""
    url = object_url(store_path)
    store: Store = BucketStore(url) if url else LocalStore(Path(store_path))
    if require_complete and run_record(store.group).get("complete") is False:
        raise InputError(store.name, "the run that writes this store has not finished")
    return store


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or name.endswith(".partial"):
        raise OptionError("name", f"expected a plain group name, got {name!r}")


class LocalStore(Store):
    """A store in a folder (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        if not is_zarr_store(path) or not (path / "zarr.json").is_file():
            raise InputError(path, "not a Zarr v3 store (no zarr.json): OME-Zarr 0.5 pyramids "
                             "need Zarr v3")
        try:
            self.group = zarr.open_group(path, mode="r")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(path, f"not a readable Zarr store ({type(err).__name__})") from err
        self.name = self.path = path

    def child(self, name: str) -> Path:
        return self.path / name

    @contextmanager
    def writing(self, name: str, overwrite: bool) -> Iterator[Any]:
        _check_name(name)
        final = self.path / name
        if final.exists():
            if not overwrite:
                raise OutputExistsError(final, "already exists; pass overwrite=True to replace "
                                        "it")
            if not (final / "zarr.json").is_file():
                raise OutputError(final, "exists and is not a Zarr group; refusing to replace "
                                  "it")
        staging = self.path / (name + ".partial")
        if staging.exists():
            shutil.rmtree(staging)
        try:
            yield zarr.open_group(staging, mode="w", zarr_format=3)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._publish(staging, final)

    def _publish(self, staging: Path, final: Path) -> None:
        """Rename the finished group into place and refresh consolidated metadata."""
        old = final.with_name(final.name + ".replaced")
        if final.exists():
            final.rename(old)
        staging.rename(final)
        if old.exists():
            shutil.rmtree(old)
        if _root_json(self.path).get("consolidated_metadata"):
            _consolidate(self.path)


class BucketStore(Store):
    """A store in object storage, written in place (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.name, self.location = url, ObjectLocation(url)
        if self.location.get("zarr.json") is None:
            raise InputError(url, "not a Zarr v3 store (no zarr.json): OME-Zarr 0.5 pyramids "
                             "need Zarr v3")
        try:
            self.group = zarr.open_group(self.location.zarr_store(), mode="r+")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(url, f"not a readable Zarr store ({first_line(err)})") from err

    def child(self, name: str) -> str:
        return f"{self.name}/{name}"

    @contextmanager
    def writing(self, name: str, overwrite: bool) -> Iterator[Any]:
        _check_name(name)
        if self.location.get(f"{name}/zarr.json") is not None and not overwrite:
            raise OutputExistsError(self.child(name), "already exists; pass overwrite=True to "
                                    "replace it")
        self.location.delete_all(name)
        try:
            yield zarr.open_group(self.location.zarr_store(), path=name, mode="w",
                                  zarr_format=3)
        except BaseException:
            self.location.delete_all(name)
            raise
        found = self.location.get("zarr.json")
        if found is not None and json.loads(found.data).get("consolidated_metadata"):
            _consolidate(self.location.zarr_store())


def _consolidate(store: Any) -> None:
    with ignoring("Consolidated metadata", "Object at tilerun"):
        zarr.consolidate_metadata(store)


def _root_json(store: Path) -> dict[str, Any]:
    try:
        data = json.loads((store / "zarr.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
