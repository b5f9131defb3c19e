"""Where the pixels are on Earth: :class:`GeoRef`, a value every layer passes on.

Sources read it from their input and sinks write it to their output; it lives here, below
both, so that a sink needs no source to name it. (``tilerun.sources.GeoRef`` still names it.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GeoRef:
    """Where the pixels are on Earth: a CRS (WKT, or None) and a GDAL-ordered affine.

    ``transform = (a, b, c, d, e, f)`` maps pixel corner ``(col, row)`` to
    ``(x, y) = (a*col + b*row + c, d*col + e*row + f)``, as in rasterio/affine.
    """

    crs_wkt: str | None
    transform: tuple[float, float, float, float, float, float]

    def pixel_size(self) -> tuple[float, str] | None:
        """Ground sampling distance in metres, ``sqrt(|a·e − b·d|)``, for metric CRSs only."""
        if self.crs_wkt is None:
            return None
        from rasterio.crs import CRS
        from rasterio.errors import CRSError

        try:
            _, factor = CRS.from_wkt(self.crs_wkt).linear_units_factor
        except CRSError:  # geographic (degrees) or unit-less
            return None
        a, b, _, d, e, _ = self.transform
        return float(abs(a * e - b * d) ** 0.5 * factor), "m"

    def pixel_centres(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray] | None:
        """1-D ``y``/``x`` coordinates of pixel centres, or None for a rotated/sheared grid."""
        a, b, c, d, e, f = self.transform
        if b != 0 or d != 0:
            return None
        return f + (np.arange(height) + 0.5) * e, c + (np.arange(width) + 0.5) * a
