"""The pixel size of a raster in a geographic CRS (EPSG:4326 …), whose affine is in degrees.

A degree of longitude shrinks with latitude, so such a pixel has no one size in metres; at the
scene's centre it has one, which is what a model trained at 10 m compares with (a scene small
enough to segment spans too little latitude for that to change much). The sides are measured
along the ellipsoid (pyproj's geodesic, WGS84 or the CRS's own), one pixel east and one south
of the centre, and the size is their geometric mean, as ``sqrt(|a·e − b·d|)`` is for metres.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilerun.sources import Source


@dataclass(frozen=True)
class DegreePixel:
    """A pixel of a geographic raster: its sides in degrees, its size in metres at the centre."""

    x_degrees: float
    y_degrees: float
    metres: float

    def describe(self) -> str:
        """``0.0001°×0.0001° (about 9.8 m at the scene's centre)``."""
        return (f"{self.x_degrees:.3g}°×{self.y_degrees:.3g}° (about {self.metres:.3g} m at the "
                "scene's centre)")


def degree_pixel(source: Source) -> DegreePixel | None:
    """The pixel of ``source`` if its CRS is geographic (else None)."""
    georef = source.georef
    if georef is None or georef.crs_wkt is None:
        return None
    from pyproj import CRS, Geod
    from pyproj.exceptions import CRSError

    try:
        crs = CRS.from_wkt(georef.crs_wkt)
    except CRSError:
        return None
    if not crs.is_geographic:
        return None
    a, b, c, d, e, f = georef.transform
    _, height, width = source.shape
    lon, lat = c + a * width / 2 + b * height / 2, f + d * width / 2 + e * height / 2
    geod = Geod(ellps="WGS84") if crs.ellipsoid is None else \
        Geod(a=crs.ellipsoid.semi_major_metre, rf=crs.ellipsoid.inverse_flattening)
    _, _, east = geod.inv(lon, lat, lon + a, lat + d)
    _, _, south = geod.inv(lon, lat, lon + b, lat + e)
    return DegreePixel(abs(a), abs(e), float((abs(east) * abs(south)) ** 0.5))
