"""Bands by name: what a raster calls its bands, and matching the names a user or model asks for.

Products name their bands: GDAL band descriptions (``blue``), band tags (``BAND_NAME=B02``,
``COMMON_NAME=blue``), colour interpretation (``red`` in an RGB file), STAC ``eo:bands``
(``name`` ``B02``, ``common_name`` ``blue``). A name asked for matches a band when, compared
case-insensitively and after the aliases below, it equals any of the band's names. The aliases
map sensor band ids to STAC common names (Sentinel-2 ``B04`` = ``red``, Landsat 8/9
``SR_B5`` = ``nir08``) and a few spellings (``swir1`` = ``swir16``). Only when no band matches
exactly, ``nir`` and ``nir08`` stand for each other (Sentinel-2's 842 nm / 865 nm near
infrared, Landsat's only one is ``nir08``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tilerun.errors import BandError, OptionError

#: Sensor band ids → STAC ``eo`` common names (lower case).
SENSOR_ALIASES: dict[str, str] = {
    # Sentinel-2 MSI
    "b01": "coastal", "b02": "blue", "b03": "green", "b04": "red", "b05": "rededge1",
    "b06": "rededge2", "b07": "rededge3", "b08": "nir", "b8a": "nir08", "b09": "nir09",
    "b10": "cirrus", "b11": "swir16", "b12": "swir22",
    # Landsat 8/9 OLI Collection 2 surface reflectance
    "sr_b1": "coastal", "sr_b2": "blue", "sr_b3": "green", "sr_b4": "red", "sr_b5": "nir08",
    "sr_b6": "swir16", "sr_b7": "swir22",
    # other spellings of common names
    "swir1": "swir16", "swir2": "swir22", "coastal_aerosol": "coastal", "aerosol": "coastal",
    "lwir": "lwir11",
}  # fmt: skip
#: Names that stand for each other when no band matches exactly.
LOOSE: dict[str, str] = {"nir": "nir08", "nir08": "nir"}
#: Colour interpretations that name a band (``gray``, ``undefined`` … name nothing).
COLOUR_NAMES = frozenset({"red", "green", "blue", "alpha"})


def canonical(name: str) -> str:
    """A name as compared: stripped, lower case, sensor ids and spellings as common names."""
    key = name.strip().lower()
    return SENSOR_ALIASES.get(key, key)


def band_labels(*names: str | None, colour: str | None = None) -> tuple[str, ...]:
    """One band's names as the raster gives them (description, tags …; duplicates and empty
    ones dropped); the colour interpretation only when nothing else names the band."""
    seen: dict[str, str] = {}
    for name in names:
        if name and name.strip() and name.strip().lower() not in seen:
            seen[name.strip().lower()] = name.strip()
    if not seen and colour and colour.lower() in COLOUR_NAMES:
        return (colour.lower(),)
    return tuple(seen.values())


def describe_offer(offered: Sequence[Sequence[str]]) -> str:
    """What a raster offers, for error messages: ``1 blue (B02), 2 green (B03), 3 unnamed``."""
    parts = []
    for k, labels in enumerate(offered, 1):
        if not labels:
            parts.append(f"{k} unnamed")
            continue
        common = canonical(labels[0])
        extra = [x for x in labels if x.lower() != common]
        shown = common if common != labels[0].lower() or not extra else labels[0]
        more = [x for x in extra if x.lower() != shown.lower()]
        parts.append(f"{k} {shown}" + (f" ({', '.join(more)})" if more else ""))
    return ", ".join(parts)


def _matches(offered: Sequence[Sequence[str]], name: str, loose: bool) -> list[int]:
    want = canonical(name)
    if loose:
        want = LOOSE.get(want, want)
    return [k for k, labels in enumerate(offered, 1)
            if any(canonical(x) == want for x in labels)]


def find_band(subject: str, offered: Sequence[Sequence[str]], name: str) -> int | None:
    """The 1-based band called ``name`` (exactly, else through :data:`LOOSE`), None when none
    is; a :class:`BandError` when several bands answer to it."""
    for loose in (False, True):
        if loose and canonical(name) not in LOOSE:
            break
        found = _matches(offered, name, loose)
        if len(found) > 1:
            raise BandError(subject, f"bands {found} are all called {name!r}; choose one by "
                            "number with --bands")
        if found:
            return found[0]
    return None


def resolve_names(subject: str, offered: Sequence[Sequence[str]],
                  wanted: Iterable[int | str]) -> tuple[int, ...]:
    """1-based band numbers for ``wanted`` (numbers pass as they are, names are looked up);
    an error naming the first missing band and listing what the raster offers."""
    chosen = []
    for item in wanted:
        if isinstance(item, int):
            chosen.append(item)
            continue
        found = find_band(subject, offered, item)
        if found is None:
            raise BandError(subject, f"has no band named {item!r}; it offers "
                            f"{describe_offer(offered)}")
        chosen.append(found)
    return tuple(chosen)


def parse_band_list(text: str) -> tuple[int | str, ...]:
    """``3,2,1`` or ``red,green,blue`` (or a mix): numbers as ints, names as given. An empty
    item (``1,,2``) is a typo, not a band to drop."""
    items = [v.strip() for v in text.split(",")]
    if "" in items:
        raise OptionError("--bands", f"empty item in {text!r}; give comma-separated band "
                          "numbers or names, e.g. 3,2,1 or red,green,blue")
    return tuple(int(v) if v.lstrip("+-").isdigit() else v for v in items)
