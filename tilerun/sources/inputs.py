"""The inputs of a job, expanded to one entry per scene.

What a user names on the command line (or passes to :func:`tilerun.predict_many`) becomes a
list of :class:`JobInput`, in the order given, each scene once:

* a raster or slide path, or a URL (``s3://``, ``https://`` …): itself;
* a folder: the rasters and slides directly inside it (by suffix, sorted by name);
* a glob (``tiles/*.tif``, quoted so the shell leaves it alone): the files it matches, sorted;
* ``@list.txt``: one path or URL a line (blank lines and ``#`` comments ignored; a relative
  path is relative to the list's folder), each expanded as above;
* a STAC ItemCollection or Item (a ``.json`` path or URL, or a pystac object): its Items.

An argument that yields nothing (a missing list, an empty folder, a glob that matches nothing,
an unreadable STAC file) is kept as an entry with a ``problem``: it fails alone, with one line,
as a missing raster does when it is opened. Nothing here opens a raster.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urljoin, urlsplit

from tilerun.errors import first_line
from tilerun.sources.remote import remote_url

#: Suffixes of the files a folder contributes (rasters GDAL reads, slides OpenSlide reads).
RASTER_SUFFIXES = frozenset({
    ".tif", ".tiff", ".jp2", ".vrt", ".img", ".nc", ".hdf", ".h5", ".png", ".jpg", ".jpeg",
    ".svs", ".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".svslide", ".dcm",
})
GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class JobInput:
    """One scene of a job.

    ``ref``: what the single-input opener takes (a path or URL); for a STAC Item, the item's
    own href (or id) and ``item`` the pystac Item. ``stem``: the name its output is made from.
    ``problem``: why this argument yielded no scene (it then fails alone, naming ``ref``).
    """

    ref: str
    stem: str
    item: Any = None
    problem: str | None = None
    #: where an Item's relative hrefs lie when it has no location of its own (the folder or
    #: URL of the ItemCollection it came in)
    base: str | None = None

    @property
    def name(self) -> str:
        return self.ref


def is_plain(arg: Any) -> bool:
    """Whether ``arg`` is one plain input (a raster, slide, URL or one STAC Item: not a folder,
    glob, list or ItemCollection): a single plain input runs exactly as ``tilerun predict``
    always has, into the one output ``-o`` names."""
    if not isinstance(arg, (str, Path)):
        return False
    text = os.fspath(arg)
    if text.startswith("@"):
        return False
    if _is_stac_name(text):
        return not _is_collection(text)
    if remote_url(arg) is not None:
        return True
    path = Path(text)
    if path.is_dir():
        return False
    return path.exists() or not (GLOB_CHARACTERS & set(text))


def expand_inputs(args: Iterable[Any]) -> list[JobInput]:
    """Every scene the arguments name, in order, each once (see the module docstring)."""
    seen: set[str] = set()
    out = []
    for arg in args:
        for entry in _expand(arg, Path.cwd()):
            key = entry.ref if entry.problem is None else f"{entry.ref}\0{entry.problem}"
            if key not in seen:
                seen.add(key)
                out.append(entry)
    return out


def _expand(arg: Any, base: Path) -> Iterator[JobInput]:
    if _is_pystac(arg):
        yield from _items(_pystac_items(arg), str(arg))
        return
    if not isinstance(arg, (str, Path)):
        yield JobInput(repr(type(arg)), "input", problem="not a path, URL or STAC object")
        return
    text = os.fspath(arg)
    if text.startswith("@"):
        yield from _from_list(_resolve(text[1:], base))
    elif _is_stac_name(text):
        yield from _from_stac(text if remote_url(arg) is not None else _resolve(text, base))
    elif remote_url(arg) is not None:
        url = remote_url(arg) or text
        yield JobInput(url, _stem(url))
    else:
        yield from _local(_resolve(text, base))


def _local(text: str) -> Iterator[JobInput]:
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _raster_name(p))
        if not files:
            yield JobInput(text, path.name or "input", problem="folder holds no raster or slide "
                           f"(looked for {', '.join(sorted(RASTER_SUFFIXES))})")
        for file in files:
            yield JobInput(str(file), _stem(str(file)))
    elif not path.exists() and GLOB_CHARACTERS & set(text):
        matches = sorted(m for m in glob.glob(text) if Path(m).is_file())
        if not matches:
            yield JobInput(text, "input", problem="matches no file")
        for match in matches:
            yield JobInput(match, _stem(match))
    else:  # a file, or a missing one (which fails when opened, naming itself)
        yield JobInput(text, _stem(text))


def _from_list(path: str) -> Iterator[JobInput]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        problem = getattr(err, "strerror", None) or first_line(err)
        yield JobInput(f"@{path}", "input", problem=f"cannot read the list ({problem})")
        return
    base = Path(path).parent
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            yield from _expand(entry, base)


def _from_stac(ref: str) -> Iterator[JobInput]:
    try:
        import pystac

        data = _read_json(ref)
        if data.get("type") == "FeatureCollection":
            found = list(pystac.ItemCollection.from_dict(data, preserve_dict=False))
        elif data.get("type") == "Feature":
            found = [pystac.Item.from_dict(data, preserve_dict=False)]
        else:
            raise ValueError(f"type {data.get('type')!r} is neither an Item nor an "
                             "ItemCollection")
    except (OSError, ValueError, KeyError, TypeError, ImportError) as err:
        problem = getattr(err, "strerror", None) or first_line(err)
        yield JobInput(ref, _stem(ref), problem=f"not a readable STAC Item or ItemCollection "
                       f"({problem})")
        return
    yield from _items(found, ref, _document_folder(ref))


def _is_collection(ref: str) -> bool:
    """Whether the STAC document ``ref`` is an ItemCollection (a job of its Items); one that
    cannot be read is left to the single-input opener, whose error names it."""
    try:
        return _read_json(ref).get("type") == "FeatureCollection"
    except (OSError, ValueError, ImportError):
        return False


def _read_json(ref: str) -> dict[str, Any]:
    if remote_url(ref) is not None:
        import pystac

        text = pystac.StacIO.default().read_text(ref)
    else:
        text = Path(ref).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the JSON is not an object")
    return data


def _items(items: Sequence[Any], origin: str, base: str | None = None) -> Iterator[JobInput]:
    if not items:
        yield JobInput(origin, "input", problem="holds no STAC Item")
    for item in items:
        href = item.get_self_href()
        yield JobInput(str(href or item.id), _safe_stem(str(item.id)), item=item, base=base)


def _document_folder(ref: str) -> str:
    """The folder (or URL prefix) of a STAC document, against which its relative hrefs lie."""
    if remote_url(ref) is not None:
        return urljoin(ref, ".")
    return str(Path(ref).resolve().parent)


def _is_pystac(arg: Any) -> bool:
    return type(arg).__module__.startswith("pystac") and \
        type(arg).__name__ in ("Item", "ItemCollection")


def _pystac_items(arg: Any) -> list[Any]:
    return [arg] if type(arg).__name__ == "Item" else list(arg)


def _is_stac_name(text: str) -> bool:
    path = urlsplit(text).path if "://" in text else text
    return path.lower().endswith((".json", ".geojson"))


def _raster_name(path: Path) -> bool:
    return path.suffix.lower() in RASTER_SUFFIXES and not path.name.startswith(".")


def _resolve(text: str, base: Path) -> str:
    """A relative path joined to ``base`` (a list's folder); absolute paths and URLs as is."""
    if remote_url(text) is not None or Path(text).is_absolute() or base == Path.cwd():
        return text
    return str(base / text)


def _stem(ref: str) -> str:
    """The output name of a path or URL: its file name without the last suffix."""
    path = urlsplit(ref).path if "://" in ref else ref
    return _safe_stem(PurePosixPath(path.replace("\\", "/")).stem or "input")


def _safe_stem(text: str) -> str:
    """``text`` usable as a file name (no separators, no leading dot)."""
    safe = "".join(c if c.isalnum() or c in "-_.+=" else "_" for c in text).lstrip(".")
    return safe or "input"


def output_stems(inputs: Sequence[JobInput]) -> tuple[list[str], list[str]]:
    """Each input's output name (without ``.zarr``) and one note per group of inputs whose
    stems collided.

    A stem shared by several inputs (``a/scene.tif``, ``b/scene.tif``) is prefixed with the
    input's folder name (``a_scene``, ``b_scene``), which does not depend on the order of the
    inputs (so ``--resume`` finds the same outputs); where that still collides, ``-2``,
    ``-3`` … follow in input order. Names are compared case-insensitively (some file systems
    are).
    """
    groups: dict[str, list[int]] = {}
    for n, entry in enumerate(inputs):
        groups.setdefault(entry.stem.lower(), []).append(n)
    names = [entry.stem for entry in inputs]
    notes = []
    for members in groups.values():
        if len(members) < 2:
            continue
        for n in members:
            parent = _safe_stem(_parent_name(inputs[n].ref))
            names[n] = f"{parent}_{inputs[n].stem}"
        taken: dict[str, int] = {}
        for n in members:
            key = names[n].lower()
            taken[key] = taken.get(key, 0) + 1
            if taken[key] > 1:
                names[n] = f"{names[n]}-{taken[key]}"
        shown = ", ".join(f"{inputs[n].ref} → {names[n]}.zarr" for n in members)
        notes.append(f"{len(members)} inputs share the name {inputs[members[0]].stem!r}, so "
                     f"their outputs are prefixed with their folder's name: {shown}")
    used: set[str] = set()
    for n, name in enumerate(names):  # a prefixed name may meet another input's own stem
        k, unique = 1, name
        while unique.lower() in used:
            k += 1
            unique = f"{name}-{k}"
        if unique != name:
            notes.append(f"{inputs[n].ref} → {unique}.zarr ({name}.zarr was taken)")
        names[n] = unique
        used.add(unique.lower())
    return names, notes


def _parent_name(ref: str) -> str:
    path = urlsplit(ref).path if "://" in ref else ref
    parent = PurePosixPath(path.replace("\\", "/")).parent.name
    if not parent and "://" in ref:
        parent = urlsplit(ref).netloc
    return parent or "input"


#: Media types of a STAC asset that holds a raster tilerun reads as one input.
RASTER_MEDIA = ("image/tiff", "image/jp2", "application/x-hdf", "image/png", "image/jpeg")


def scene_source(entry: JobInput, bands: Sequence[int | str] | None,
                 model_bands: Sequence[str] | None = None,
                 resampling: str = "nearest") -> tuple[Any, bool]:
    """What the single-input opener takes for ``entry``, and whether ``bands`` were applied
    already (a STAC Item opened here into a Source takes them itself).

    A STAC Item whose assets name their bands (``eo:bands``) is opened by
    :func:`tilerun.sources.stac.open_stac_item`, its bands chosen by ``bands`` or else the
    model's ``model_bands``; an Item that names none runs as its one raster asset (a
    pre-stacked product), and one with several such assets is refused with one line.
    """
    if entry.item is None:
        return entry.ref, False
    from tilerun.sources.stac import band_offers, open_stac_item

    if not band_offers(entry.item, entry.base):
        return _single_asset(entry), False
    return open_stac_item(entry.item, bands if bands is not None else model_bands,
                          resampling=resampling, base=entry.base, name=entry.ref), True


def _single_asset(entry: JobInput) -> str:
    from tilerun.errors import InputError

    item = entry.item
    rasters = [a for a in item.assets.values()
               if "data" in (a.roles or ()) or any(m in (a.media_type or "") for m in RASTER_MEDIA)]
    data = [a for a in rasters if "data" in (a.roles or ())] or rasters
    if len(data) != 1:
        raise InputError(entry.ref, f"STAC Item {item.id!r} has {len(data)} raster assets "
                         "and no eo:bands to choose bands among them; add eo:bands to its "
                         "assets, or pass the asset files themselves")
    href = str(data[0].get_absolute_href() or data[0].href)
    if entry.base is None or remote_url(href) is not None or Path(href).is_absolute():
        return href
    return urljoin(entry.base, href) if remote_url(entry.base) else str(Path(entry.base) / href)
