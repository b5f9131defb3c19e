"""Labels to polygons chunk by chunk, dissolved across chunk seams: one region, one polygon.

A *region* is a 4-connected set of pixels with one label value (nodata excluded), as
``rasterio.features.shapes`` (GDAL's polygonizer) traces them. Tracing a whole large raster at
once would hold it in memory, so each stored chunk is traced on its own; a region that crosses
a chunk seam then comes out as several *pieces*, which must be joined again.

How pieces are joined, in bounded memory:

* Pieces are traced in **pixel corner coordinates** (x = column, y = row), so every vertex is
  an integer and unions are exact; the frame's affine is applied only when a region is
  written (:func:`to_frame`).
* Each chunk's pieces are its 4-connected components per label value (an id raster, which
  is then traced), so the piece of every pixel is known. Two pixels facing each other across
  a seam with the same label join their pieces: a union-find over piece ids, fed by comparing
  the previous chunk's last column (and the previous chunk row's last row) with this chunk's
  first.
* A piece that touches no seam is a whole region and is yielded at once. A group of joined
  pieces is complete once every seam any of its pieces touches has been compared, i.e. after
  the chunk to the right or below (in row-major order) of its last open seam; it is then
  unioned (``shapely.union_all``) and yielded. So only regions touching the seams still to be
  compared are held: about one chunk row of them (plus any region that really spans further).

The pixel count of a region is exact (from the id rasters), so its area is exactly
``pixels × pixel area``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine

from tilerun.exports.reader import FinishedOutput
from tilerun.geometry import Window
from tilerun.sinks.layout.codes import LABEL_FILL


@dataclass(frozen=True)
class Region:
    """One 4-connected region of one label value, in pixel corner coordinates."""

    value: int
    #: a shapely Polygon (holes where other labels or nodata lie inside)
    polygon: Any
    pixels: int


@dataclass
class _Pending:
    """Pieces of regions that may still continue across a seam (a union-find over ids).

    Mutable on purpose: it is the tracer's running state, private to one :func:`regions`."""

    parent: dict[int, int] = field(default_factory=dict)
    members: dict[int, list[int]] = field(default_factory=dict)
    needed: dict[int, int] = field(default_factory=dict)
    buckets: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    geometry: dict[int, Any] = field(default_factory=dict)
    value: dict[int, int] = field(default_factory=dict)
    pixels: dict[int, int] = field(default_factory=dict)

    def add(self, gid: int, geometry: Any, value: int, pixels: int, needed: int) -> None:
        self.parent[gid] = gid
        self.members[gid] = [gid]
        self.needed[gid] = needed
        self.buckets[needed].add(gid)
        self.geometry[gid] = geometry
        self.value[gid] = value
        self.pixels[gid] = pixels

    def find(self, gid: int) -> int:
        root = gid
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[gid] != root:  # path compression
            self.parent[gid], gid = root, self.parent[gid]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra].extend(self.members.pop(rb))
        needed = max(self.needed[ra], self.needed.pop(rb))
        self.needed[ra] = needed
        self.buckets[needed].add(ra)

    def complete(self, roots: set[int], chunk: int) -> Iterator[Region]:
        """Yield (and forget) the groups among ``roots`` with no seam left after ``chunk``."""
        import shapely

        roots |= self.buckets.pop(chunk, set())
        for root in sorted(roots):
            if self.parent.get(root) != root or self.needed[root] > chunk:
                continue
            members = self.members.pop(root)
            del self.needed[root]
            pieces = [self.geometry.pop(g) for g in members]
            pixels = sum(self.pixels.pop(g) for g in members)
            value = self.value[root]
            for g in members:
                del self.parent[g]
                del self.value[g]
            polygon = pieces[0]
            if len(pieces) > 1:
                # simplify(0) drops the vertices the seams left on straight edges, nothing else
                polygon = shapely.simplify(shapely.union_all(pieces), 0.0)
            yield from _regions(value, polygon, pixels)


def regions(output: FinishedOutput, progress: Callable[[int], None] | None = None
            ) -> Iterator[Region]:
    """Every region of ``output``'s labels (see the module docstring), chunk by chunk.

    ``progress(k)`` is called after the ``k``-th chunk (1-based) has been traced."""
    height, width = output.height, output.width
    cy, cx = output.chunks
    columns = -(-width // cx)
    pending = _Pending()
    # The seam state: the previous chunk's last column and the previous chunk row's last row,
    # as label values and global piece ids (-1: none).
    bottom_values = np.full(width, LABEL_FILL, np.uint8)
    bottom_ids = np.full(width, -1, np.int64)
    right_values = np.full(cy, LABEL_FILL, np.uint8)
    right_ids = np.full(cy, -1, np.int64)
    next_id = 0
    for k, window in enumerate(output.windows((cy, cx))):
        labels = output.labels(window)
        geometries, values, ids = _trace(labels, window)
        n = len(geometries)
        gids = np.where(ids > 0, ids - 1 + next_id, -1)
        pixels = np.bincount(ids.ravel(), minlength=n + 1)[1:]
        links: list[tuple[int, int]] = []
        if window.x > 0:
            links += _links(right_values[: window.height], right_ids[: window.height],
                            labels[:, 0], gids[:, 0])
        if window.y > 0:
            cols = slice(window.x, window.right)
            links += _links(bottom_values[cols], bottom_ids[cols], labels[0], gids[0])
        right_open = window.right < width
        bottom_open = window.bottom < height
        on_right = set(np.unique(gids[:, -1]).tolist()) if right_open else set()
        on_bottom = set(np.unique(gids[-1]).tolist()) if bottom_open else set()
        linked = {b for _, b in links}
        touched: set[int] = set()
        for i in range(n):
            gid = next_id + i
            needed = max(k + 1 if gid in on_right else k,
                         k + columns if gid in on_bottom else k)
            if needed == k and gid not in linked:
                yield from _regions(values[i], geometries[i], int(pixels[i]))
                continue
            pending.add(gid, geometries[i], values[i], int(pixels[i]), needed)
            touched.add(gid)
        for a, b in links:
            pending.union(a, b)
        roots = {pending.find(g) for g in touched}
        yield from pending.complete(roots, k)
        # this chunk's far edges become the seam state for the chunks right of and below it
        if right_open:
            right_values[: window.height] = labels[:, -1]
            right_ids[: window.height] = gids[:, -1]
        if bottom_open:
            bottom_values[window.x : window.right] = labels[-1]
            bottom_ids[window.x : window.right] = gids[-1]
        next_id += n
        if progress is not None:
            progress(k + 1)
    if pending.parent:  # cannot happen: every group's last seam is compared by the last chunk
        raise RuntimeError(f"{len(pending.parent)} polygon pieces were never completed")


def _trace(labels: np.ndarray, window: Window) -> tuple[list[Any], list[int], np.ndarray]:
    """The chunk's pieces (pixel corner coordinates), their label values and the id raster
    (``i + 1`` for piece ``i``, 0 for nodata).

    The pieces are the 4-connected components of each label value (``scipy.ndimage.label``);
    tracing the component ids rather than the labels gives the same outlines (a component is
    exactly what the polygonizer traces as one polygon) and tells which piece each pixel
    belongs to, with no second pass."""
    from affine import Affine
    from rasterio.features import shapes
    from scipy import ndimage

    ids = np.zeros(labels.shape, np.int32)
    classes: list[int] = []
    for value in np.unique(labels).tolist():
        if value == LABEL_FILL:
            continue
        components, count = ndimage.label(labels == value)
        inside = components > 0
        ids[inside] = components[inside] + len(classes)
        classes.extend([int(value)] * count)
    if not classes:
        return [], [], ids
    offset = Affine.translation(window.x, window.y)
    traced = shapes(ids, mask=ids > 0, connectivity=4, transform=offset)
    return _polygons(traced, len(classes)), classes, ids


def _polygons(traced: Any, count: int) -> list[Any]:
    """Shapely polygons from the polygonizer's GeoJSON-like output, built in bulk (one
    ``shapely.polygons`` call, not one Python object per ring), ordered by component id."""
    import shapely

    flat: list[Any] = []
    ring_sizes: list[int] = []
    ring_owner: list[int] = []
    for shape, value in traced:
        for ring in shape["coordinates"]:
            flat.extend(ring)
            ring_sizes.append(len(ring))
            ring_owner.append(int(value) - 1)
    coords = np.asarray(flat, dtype=np.float64)
    rings = shapely.linearrings(coords, indices=np.repeat(np.arange(len(ring_sizes)), ring_sizes))
    order = np.argsort(np.asarray(ring_owner), kind="stable")  # shells stay before their holes
    polygons = shapely.polygons(rings[order], indices=np.asarray(ring_owner)[order])
    if len(polygons) != count:
        raise RuntimeError(f"traced {len(polygons)} polygons for {count} components")
    return list(polygons)


def _links(
    values_a: np.ndarray, ids_a: np.ndarray, values_b: np.ndarray, ids_b: np.ndarray
) -> list[tuple[int, int]]:
    """Pairs (earlier piece, new piece) that face each other across a seam with one label."""
    join = (values_a == values_b) & (ids_a >= 0) & (ids_b >= 0)
    if not join.any():
        return []
    pairs = np.unique(np.stack([ids_a[join], ids_b[join]], axis=1), axis=0)
    return [(int(a), int(b)) for a, b in pairs]


def _regions(value: int, polygon: Any, pixels: int) -> Iterator[Region]:
    """A region as one Polygon. An edge-connected union is always one Polygon; should GEOS
    ever return several parts, each is yielded with its own pixel count (its area)."""
    if polygon.geom_type == "Polygon":
        yield Region(value, polygon, pixels)
        return
    for part in getattr(polygon, "geoms", ()):
        if part.geom_type == "Polygon" and part.area > 0:
            yield Region(value, part, round(part.area))


def to_frame(polygons: Any, frame: Affine) -> Any:
    """Pixel-corner polygons (an array of shapely geometries) in the output's frame, exterior
    rings counter-clockwise (as GeoJSON and OGC want, whatever the affine's handedness)."""
    import shapely

    a, b, c, d, e, f = frame[:6]

    def affine(coords: np.ndarray) -> np.ndarray:
        x, y = coords[:, 0], coords[:, 1]
        return np.stack([a * x + b * y + c, d * x + e * y + f], axis=1)

    return shapely.orient_polygons(shapely.transform(polygons, affine), exterior_cw=False)


#: regions per batch written (bounds what is held before a write)
BATCH_FEATURES = 4096


def region_batches(output: FinishedOutput,
                   progress: Callable[[int], None] | None = None) -> Iterator[list[Region]]:
    """:func:`regions` in lists of at most :data:`BATCH_FEATURES`, as they are finished."""
    batch: list[Region] = []
    for region in regions(output, progress):
        batch.append(region)
        if len(batch) == BATCH_FEATURES:
            yield batch
            batch = []
    if batch:
        yield batch
