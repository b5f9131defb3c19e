"""Where the NGFF pyramids go: the finished tilerun store they are added to, and the staging
of each pyramid group (written under ``<name>.partial``, renamed into place when complete, and
the store's consolidated metadata rebuilt so that it lists the new group)."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zarr

from tilerun.errors import InputError, OptionError, OutputError, OutputExistsError
from tilerun.sinks.store import is_zarr_store, run_record


@dataclass(frozen=True)
class Pyramid:
    """What a ``write_*_pyramid`` call wrote."""

    path: Path
    name: str
    shapes: tuple[tuple[int, ...], ...]
    scales: tuple[tuple[float, ...], ...]
    translations: tuple[tuple[float, ...], ...]
    dtype: str
    method: str

    @property
    def levels(self) -> int:
        return len(self.shapes)


def open_store(store_path: str | Path) -> Store:
    path = Path(store_path)
    if not is_zarr_store(path) or not (path / "zarr.json").is_file():
        raise InputError(path, "not a Zarr v3 store (no zarr.json): OME-Zarr 0.5 pyramids "
                         "need Zarr v3")
    try:
        group = zarr.open_group(path, mode="r")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(path, f"not a readable Zarr store ({type(err).__name__})") from err
    if run_record(group).get("complete") is False:
        raise InputError(path, "the run that writes this store has not finished")
    return Store(group, path)


@dataclass(frozen=True)
class Store:
    group: Any
    path: Path

    @property
    def attrs(self) -> Any:
        return self.group.attrs


def source_array(store: Store, variable: str, ndim: int) -> Any:
    try:
        array = zarr.open_array(store.path / variable, mode="r")
    except (OSError, ValueError, KeyError, TypeError, FileNotFoundError) as err:
        raise InputError(store.path, f"has no array {variable!r}") from err
    if array.ndim != ndim:
        raise InputError(store.path, f"{variable} has {array.ndim} dimensions, expected {ndim}")
    return array


def staging(store: Path, name: str, overwrite: bool) -> tuple[Path, Path]:
    if not name or "/" in name or name.startswith(".") or name.endswith(".partial"):
        raise OptionError("name", f"expected a plain group name, got {name!r}")
    final = store / name
    if final.exists():
        if not overwrite:
            raise OutputExistsError(final, "already exists; pass overwrite=True to replace it")
        if not (final / "zarr.json").is_file():
            raise OutputError(final, "exists and is not a Zarr group; refusing to replace it")
    staging = store / (name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    return staging, final


@contextmanager
def cleanup_on_error(staging: Path) -> Iterator[None]:
    """Remove the half-written group when anything fails (nothing partial is left behind)."""
    try:
        yield
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish(
    store: Path,
    staging: Path,
    final: Path,
    name: str,
    shapes: Sequence[tuple[int, ...]],
    scales: list[list[float]],
    translations: list[list[float]],
    dtype: str,
    method: str,
) -> Pyramid:
    """Rename the finished group into place and refresh consolidated metadata."""
    old = final.with_name(final.name + ".replaced")
    if final.exists():
        final.rename(old)
    staging.rename(final)
    if old.exists():
        shutil.rmtree(old)
    if _root_json(store).get("consolidated_metadata"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            zarr.consolidate_metadata(store)
    return Pyramid(
        path=final,
        name=name,
        shapes=tuple(tuple(int(n) for n in s) for s in shapes),
        scales=tuple(tuple(s) for s in scales),
        translations=tuple(tuple(t) for t in translations),
        dtype=dtype,
        method=method,
    )


def _root_json(store: Path) -> dict[str, Any]:
    try:
        data = json.loads((store / "zarr.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
