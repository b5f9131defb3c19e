"""A frozen rectangular window in pixel coordinates, plus pure functions on windows.

Windows may extend beyond the image (negative offsets, or past the far edge): tiles near the
border read from the mirror-padded image, and the same value object describes both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Window:
    """Rows ``[y, y + height)`` and columns ``[x, x + width)``."""

    y: int
    x: int
    height: int
    width: int

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def is_empty(self) -> bool:
        return self.height <= 0 or self.width <= 0

    @property
    def size(self) -> int:
        return max(self.height, 0) * max(self.width, 0)

    def slices(self, origin: Window | None = None) -> tuple[slice, slice]:
        """Numpy slices of this window inside an array that covers ``origin``."""
        oy, ox = (origin.y, origin.x) if origin is not None else (0, 0)
        return (
            slice(self.y - oy, self.bottom - oy),
            slice(self.x - ox, self.right - ox),
        )

    def intersection(self, other: Window) -> Window:
        """The overlap of two windows; empty (height or width 0) when they do not meet."""
        y0, x0 = max(self.y, other.y), max(self.x, other.x)
        y1, x1 = min(self.bottom, other.bottom), min(self.right, other.right)
        return Window(y0, x0, max(y1 - y0, 0), max(x1 - x0, 0))

    def union(self, other: Window) -> Window:
        """The bounding box of two windows."""
        y0, x0 = min(self.y, other.y), min(self.x, other.x)
        y1, x1 = max(self.bottom, other.bottom), max(self.right, other.right)
        return Window(y0, x0, y1 - y0, x1 - x0)

    def intersects(self, other: Window) -> bool:
        return not self.intersection(other).is_empty

    def contains(self, other: Window) -> bool:
        return (
            self.y <= other.y
            and self.x <= other.x
            and other.bottom <= self.bottom
            and other.right <= self.right
        )


def bounding_window(windows: list[Window]) -> Window:
    """The smallest window holding every window of a non-empty list."""
    if not windows:
        raise ValueError("bounding_window needs at least one window")
    out = windows[0]
    for w in windows[1:]:
        out = out.union(w)
    return out
