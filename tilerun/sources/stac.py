"""A STAC Item as one source: the assets whose bands the model takes, stacked on one grid.

A STAC Item (JSON, local or a URL; read with pystac) lists a scene's files as assets; the
``eo`` extension names each asset's bands (``eo:bands``: ``name`` ``B04``, ``common_name``
``red``) and the ``raster`` extension gives their ``scale``/``offset``/``nodata``
(``raster:bands``); STAC 1.1 puts both in ``bands`` (``eo:common_name``, ``raster:scale`` …).
:func:`open_stac_item` picks, for each band name asked for, the asset that has it (a
GeoTIFF before another format such as JPEG 2000, a single-band asset before a multi-band one
such as a ``visual`` RGB), and stacks the chosen bands with
:class:`~tilerun.sources.stack.StackSource`: on the grid of the finest of them, coarser ones
resampled window by window, georeferenced as the files are. Relative hrefs are resolved
against the item's own location (or ``base`` for an item without one, e.g. one taken from an
ItemCollection). Only the chosen assets are opened. The files' own georeferencing is kept;
the projection extension (``proj:code``, ``proj:transform``) places a file that has none.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from tilerun.errors import BandError, InputError
from tilerun.geometry import GeoRef
from tilerun.sources.bandnames import band_labels, canonical, describe_offer, resolve_names
from tilerun.sources.bands import BandSpec
from tilerun.sources.remote import remote_url
from tilerun.sources.stack import BandFile, StackSource

#: Asset roles that are never input bands.
SKIPPED_ROLES = frozenset({"thumbnail", "overview", "metadata", "visual"})


def is_stac_item(obj: str | Path) -> bool:
    """Whether ``obj`` names a STAC Item (or other STAC/GeoJSON) file: a ``.json`` path or URL."""
    text = os.fspath(obj).lower().split("?")[0]
    return text.endswith((".json", ".geojson"))


def open_stac_item(item_or_path: Any, band_names: BandSpec | None, *,
                   resampling: str = "nearest", base: str | None = None,
                   name: str | None = None) -> StackSource:
    """The bands ``band_names`` of a STAC Item, as one :class:`StackSource`.

    ``item_or_path``: a ``pystac.Item``, its dict, or the path/URL of its JSON. ``band_names``:
    names (matched against ``eo:bands`` common names, band names and asset keys; see
    :mod:`tilerun.sources.bandnames`) or 1-based numbers in the list of bands the item offers.
    ``base``: where relative hrefs lie when the item has no location of its own.
    """
    item, where = _load(item_or_path)
    subject = name or where or f"STAC item {item.id}"
    offers = band_offers(item, base if base is not None else _folder(where))
    if not offers:
        raise InputError(subject, "has no asset with eo:bands (or bands) to read")
    labels = [f.labels for f in offers]
    if not band_names:
        raise BandError(subject, "a STAC item's bands are chosen by name: pass --bands (e.g. "
                        "red,green,blue) or a model whose spec names its bands; it offers "
                        f"{describe_offer(labels)}")
    chosen = resolve_names(subject, labels, band_names)
    bad = [k for k in chosen if not 1 <= k <= len(offers)]
    if bad:
        raise BandError(subject, f"offers {len(offers)} band(s); {bad} out of range")
    files = [offers[k - 1] for k in chosen]
    return StackSource(files, name=subject, resampling=resampling)


def _load(obj: Any) -> tuple[Any, str | None]:
    """The pystac Item and where it was read from (None for an object or a dict)."""
    import pystac

    if isinstance(obj, pystac.Item):
        return obj, obj.get_self_href()
    try:
        if isinstance(obj, dict):
            return pystac.Item.from_dict(obj), None
        where = remote_url(obj) or os.fspath(obj)
        if remote_url(obj) is None and not Path(where).is_file():
            raise InputError(where, "no such file")
        data = pystac.StacIO.default().read_json(where)
        if not isinstance(data, dict) or data.get("type") != "Feature":
            kind = data.get("type", "no type") if isinstance(data, dict) else "a list"
            raise InputError(where, f"is not a STAC Item (GeoJSON type {kind!r}); give one item")
        return pystac.Item.from_dict(data, href=where), where
    except (OSError, ValueError, KeyError, TypeError, pystac.STACError) as err:
        subject = obj if not isinstance(obj, dict) else "STAC item"
        raise InputError(str(subject), f"not a STAC Item pystac can read ({err})") from err


def _folder(where: str | None) -> str | None:
    if where is None:
        return None
    if remote_url(where) is not None:
        return urljoin(where, ".")
    return str(Path(where).resolve().parent)


def band_offers(item: Any, base: str | None) -> list[BandFile]:
    """Every band the item's data assets offer, in asset order, one asset per band (the
    preferred one: GeoTIFF, then single-band, see the module doc); nothing is opened."""
    candidates = []
    for order, (key, asset) in enumerate(item.assets.items()):
        roles = set(asset.roles or ())
        if roles & SKIPPED_ROLES and "data" not in roles:
            continue
        bands = asset.extra_fields.get("bands") or asset.extra_fields.get("eo:bands") or []
        raster = list(asset.extra_fields.get("raster:bands") or [])
        if not bands and "data" in roles:  # e.g. a class layer (Sentinel-2's scl): its key
            bands = [{} for _ in raster]
        href = _href(asset, base)
        place = _proj_georef({**item.properties, **asset.extra_fields})
        tiff = "tiff" in (asset.media_type or "tiff").lower()
        for k, eo in enumerate(bands):
            if not isinstance(eo, dict):
                continue  # STAC 0.x: an index into the item's eo:bands
            rb = raster[k] if k < len(raster) and isinstance(raster[k], dict) else {}
            file = replace(_band_file(href, k + 1, eo, rb, key if len(bands) == 1 else None),
                           georef=place)
            names = {canonical(x) for x in (eo.get("common_name") or eo.get("eo:common_name"),
                                            eo.get("name")) if x}
            names = names or {_stem(href)}  # unnamed: the same file in another format is it
            candidates.append(((not tiff, len(bands) > 1, order, k), frozenset(names), file))
    kept: dict[frozenset[str], tuple[tuple[bool, bool, int, int], BandFile]] = {}
    for rank, identity, file in sorted(candidates, key=lambda c: c[0]):
        kept.setdefault(identity, (rank, file))
    return [file for _, file in sorted(kept.values(), key=lambda c: c[0][2:])]


def _proj_georef(fields: dict[str, Any]) -> GeoRef | None:
    """Where the projection extension places an asset (``proj:code``/``proj:epsg``/
    ``proj:wkt2`` and ``proj:transform``; the asset's fields over the item's), or None."""
    crs = next((fields[k] for k in ("proj:wkt2", "proj:code", "proj:epsg")
                if fields.get(k) is not None), None)
    transform = fields.get("proj:transform")
    if crs is None or not isinstance(transform, (list, tuple)) or len(transform) < 6:
        return None
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        wkt = CRS.from_user_input(f"EPSG:{crs}" if isinstance(crs, int) else crs).to_wkt()
    except CRSError:
        return None
    a, b, c, d, e, f = (float(v) for v in transform[:6])
    return GeoRef(wkt, (a, b, c, d, e, f))


def _stem(href: str) -> str:
    return href.rstrip("/").rsplit("/", 1)[-1].split("?")[0].rsplit(".", 1)[0].lower()


def _band_file(href: str, band: int, eo: dict[str, Any], rb: dict[str, Any],
               key: str | None) -> BandFile:
    def get(d: dict[str, Any], *keys: str) -> Any:
        return next((d[k] for k in keys if d.get(k) is not None), None)

    labels = band_labels(get(eo, "common_name", "eo:common_name"), get(eo, "name"), key)
    both = {**eo, **rb}
    return BandFile(href, band, labels, scale=_number(get(both, "scale", "raster:scale")),
                    offset=_number(get(both, "offset", "raster:offset")),
                    nodata=_number(get(both, "nodata", "raster:nodata")))


def _number(value: Any) -> float | None:
    """A number from JSON; STAC writes NaN and infinities as the strings "nan", "inf"."""
    return None if value is None else float(value)


def _href(asset: Any, base: str | None) -> str:
    """The asset's absolute href: pystac's, else joined to ``base``."""
    absolute = asset.get_absolute_href()
    if absolute:
        return str(absolute)
    href = str(asset.href)
    if base is None or remote_url(href) is not None or os.path.isabs(href):
        return href
    if remote_url(base) is not None:
        return urljoin(base.rstrip("/") + "/", href)
    return os.path.normpath(os.path.join(base, href))


def stac_band_names(item_or_path: Any, base: str | None = None) -> Sequence[tuple[str, ...]]:
    """The names of the bands an item offers, in order (for listings and errors)."""
    item, where = _load(item_or_path)
    return [f.labels for f in band_offers(item, base if base is not None else _folder(where))]
