"""Band selection, 1-based as in rasterio and GDAL."""

from __future__ import annotations

from collections.abc import Sequence

from tilerun.errors import BandError


def select_bands(name: str, count: int, bands: Sequence[int] | None) -> tuple[int, ...]:
    """Validate a 1-based band list against ``count`` bands; None means all bands in order."""
    if bands is None:
        return tuple(range(1, count + 1))
    chosen = tuple(int(b) for b in bands)
    if not chosen:
        raise BandError(name, "--bands selects no band")
    bad = [b for b in chosen if not 1 <= b <= count]
    if bad:
        raise BandError(
            name, f"has {count} band(s); --bands {bad} out of range (bands are 1-based)"
        )
    return chosen
