"""Tile geometry: pure functions and frozen value objects, no I/O."""

from tilerun.geometry.georef import GeoRef
from tilerun.geometry.grid import TileGrid, make_grid, reflect_index
from tilerun.geometry.window import Window, bounding_window

__all__ = ["GeoRef", "TileGrid", "Window", "bounding_window", "make_grid", "reflect_index"]
