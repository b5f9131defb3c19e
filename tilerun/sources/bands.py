"""Band selection, 1-based as in rasterio and GDAL, by number or by name."""

from __future__ import annotations

from collections.abc import Sequence

from tilerun.errors import BandError
from tilerun.sources.bandnames import describe_offer, find_band, resolve_names

#: What selects bands: 1-based numbers and/or names (see :mod:`tilerun.sources.bandnames`).
BandSpec = Sequence[int | str]


def select_bands(name: str, count: int, bands: BandSpec | None,
                 labels: Sequence[Sequence[str]] = ()) -> tuple[int, ...]:
    """Validate a band list against ``count`` bands; None means all bands in order.

    Names are looked up in ``labels`` (each band's names, see
    :func:`tilerun.sources.bandnames.band_labels`); a name no band has is an error that lists
    what the raster offers.
    """
    if bands is None:
        return tuple(range(1, count + 1))
    offered = list(labels) + [()] * (count - len(labels))
    chosen = resolve_names(name, offered, bands)
    if not chosen:
        raise BandError(name, "--bands selects no band")
    bad = [b for b in chosen if not 1 <= b <= count]
    if bad:
        raise BandError(
            name, f"has {count} band(s); --bands {bad} out of range (bands are 1-based)"
        )
    return chosen


def bands_for_model(name: str, labels: Sequence[Sequence[str]],
                    model_names: Sequence[str] | None) -> tuple[int, ...] | None:
    """The bands a model's spec names, in its order, when the raster names its bands; None
    to take the bands as they come (the raster names none of them, or the spec gives no
    names). A raster that names some of the model's bands but not all is an error: feeding
    it by position would give the model the wrong bands."""
    if not model_names or not any(labels):
        return None
    found = [find_band(name, labels, n) for n in model_names]
    if all(f is None for f in found):
        return None
    missing = [n for n, f in zip(model_names, found, strict=True) if f is None]
    if missing:
        raise BandError(name, f"has no band named {', '.join(map(repr, missing))}, which the "
                        f"model takes ({', '.join(model_names)}); it offers "
                        f"{describe_offer(labels)}; choose bands with --bands")
    return tuple(f for f in found if f is not None)
