"""The one seam every reader implements: :class:`Source`.

A source is a lazy ``(bands, height, width)`` image. The engine asks it for windows (several
threads or processes at once); nothing ever reads the whole image. Concrete sources implement
:meth:`Source.read`; mirror padding, validity and the dask view are built here once for all.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from tilerun.errors import UnsupportedDtypeError
from tilerun.geometry import GeoRef, Window, reflect_index

#: numpy kinds a model can be fed: bool, unsigned, signed, float.
SUPPORTED_KINDS = "buif"


@dataclass(frozen=True)
class ScaleOffset:
    """Per band: physical value = stored value × ``scales[b]`` + ``offsets[b]``.

    GDAL's band scale/offset and STAC's ``raster:bands`` ``scale``/``offset`` follow this
    convention (Sentinel-2 L2A: reflectance = DN × 0.0001 − 0.1 from baseline 04.00 on), and
    rioxarray's ``mask_and_scale`` applies it on reading. ``origin`` says where it was read.
    """

    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    origin: str

    @classmethod
    def of(cls, scales: Any, offsets: Any, origin: str) -> ScaleOffset | None:
        """None when every band is stored as is (scale 1, offset 0); missing values are 1/0."""
        s = tuple(1.0 if v is None else float(v) for v in scales)
        o = tuple(0.0 if v is None else float(v) for v in offsets)
        if all(v == 1.0 for v in s) and all(v == 0.0 for v in o):
            return None
        return cls(s, o, origin)

    def physical_range(self, band: int, lo: float, hi: float) -> tuple[float, float]:
        """``[lo, hi]`` of stored values as physical values (ordered: a scale may be < 0)."""
        a = lo * self.scales[band] + self.offsets[band]
        b = hi * self.scales[band] + self.offsets[band]
        return min(a, b), max(a, b)


class PerThreadHandles:
    """For sources that keep their file handles per thread (``self._local``): GDAL handles are
    not thread-safe, so each reading thread opens its own. Pickled (to a Dask worker), such a
    source leaves its handles behind; the worker's threads open their own."""

    _local: threading.local

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()


class Source(ABC):
    """A lazily read ``(bands, height, width)`` image with validity and georeferencing."""

    #: What to call this source in messages (a path, or a description of an in-memory array).
    name: str

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int, int]:
        """``(bands, height, width)`` after band selection."""

    @property
    @abstractmethod
    def dtype(self) -> np.dtype[Any]:
        """The pixel type as stored."""

    @property
    def georef(self) -> GeoRef | None:
        """CRS and affine, or None for plain arrays."""
        return None

    @property
    def nodata(self) -> float | None:
        """The declared nodata value, if any (NaN is a valid answer)."""
        return None

    #: what :attr:`band_labels` and :attr:`scale_offset` return: a source that reads band
    #: names or a scale/offset sets these when it opens
    _labels: tuple[tuple[str, ...], ...] = ()
    _scale_offset: ScaleOffset | None = None

    @property
    def band_labels(self) -> tuple[tuple[str, ...], ...]:
        """Per selected band, the names the input gives it (descriptions, band tags, STAC
        ``eo:bands``); empty when it names none. See :mod:`tilerun.sources.bandnames`."""
        return self._labels

    @property
    def scale_offset(self) -> ScaleOffset | None:
        """The input's own scale/offset per selected band, None when it declares none."""
        return self._scale_offset

    def pixel_size(self) -> tuple[float, str] | None:
        """``(size, unit)`` of a pixel — metres for rasters, microns for slides — or None."""
        return self.georef.pixel_size() if self.georef is not None else None

    # -- capabilities: what the engine may ask of any source ----------------------------------

    #: A whole-slide image: ``--mpp``/``--level`` apply, tissue is detected and label
    #: pyramids are written by default.
    is_slide: bool = False

    def metadata(self) -> dict[str, Any] | None:
        """What the output records about the image beyond georeferencing (slides: scanner,
        µm per pixel, the level read and its level-0 coordinates), JSON-serialisable; None
        when there is nothing more to say."""
        return None

    def thumbnail(self, max_size: int) -> np.ndarray | None:
        """RGB ``(3, h, w)`` with ``max(h, w) ≤ max_size`` for tissue detection, or None when
        the source offers none (tissue is then not detected)."""
        return None

    def content_files(self) -> tuple[Path, ...] | None:
        """The local files whose bytes make the pixels (a run records their digest, so that
        ``--resume`` notices a rewritten input); None when they are not local files."""
        return None

    def in_memory(self) -> np.ndarray | None:
        """The pixels, when they are an in-memory array (digested instead of files)."""
        return None

    @abstractmethod
    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Read a window that lies inside the image.

        Returns ``(pixels, valid)``: pixels ``(bands, h, w)`` in the stored dtype, and a boolean
        ``(bands, h, w)`` that is False where a band's value is nodata, masked or non-finite.
        Must be safe to call from several threads at once.
        """

    # -- built on read() ---------------------------------------------------------------------

    def check_dtype(self) -> None:
        if self.dtype.kind not in SUPPORTED_KINDS:
            raise UnsupportedDtypeError(
                self.name, f"pixel type {self.dtype} cannot be fed to a model"
            )

    def read_padded(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Read any window, mirror-padding (reflect) the parts outside the image.

        Inside the image it is a plain read. A window that sticks out by less than its inner
        part reads that part and pads it with ``np.pad(mode="reflect")`` (a copy; the image
        edge is the array's edge there). Wider pads (tiny images) read the bounding box of the
        reflected indices (:func:`reflect_index`) once, then gather.
        """
        _, height, width = self.shape
        inside = window.intersection(Window(0, 0, height, width))
        pads = ((0, 0), (inside.y - window.y, window.bottom - inside.bottom),
                (inside.x - window.x, window.right - inside.right))
        if inside == window:
            return self.read(window)
        if max(pads[1]) < inside.height and max(pads[2]) < inside.width:
            pixels, valid = self.read(inside)
            return np.pad(pixels, pads, mode="reflect"), np.pad(valid, pads, mode="reflect")
        rows = reflect_index(np.arange(window.y, window.bottom), height)
        cols = reflect_index(np.arange(window.x, window.right), width)
        inner = Window(
            int(rows.min()),
            int(cols.min()),
            int(rows.max() - rows.min()) + 1,
            int(cols.max() - cols.min()) + 1,
        )
        pixels, valid = self.read(inner)
        index = np.ix_(rows - inner.y, cols - inner.x)
        return pixels[:, index[0], index[1]], valid[:, index[0], index[1]]

    def to_dask(self, chunks: int = 1024) -> da.Array:
        """The image as a lazy dask array of shape ``(bands, height, width)``."""
        bands = self.shape[0]
        return da.from_array(
            _ArrayView(self), chunks=(bands, chunks, chunks), asarray=False, fancy=False
        )


class _ArrayView:
    """Just enough of the numpy array protocol for :func:`dask.array.from_array`."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.shape = source.shape
        self.dtype = source.dtype
        self.ndim = 3

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        b, ys, xs = key
        y0, y1, _ = ys.indices(self.shape[1])
        x0, x1, _ = xs.indices(self.shape[2])
        if y1 <= y0 or x1 <= x0:
            return np.empty((self.shape[0], max(y1 - y0, 0), max(x1 - x0, 0)), self.dtype)
        pixels, _ = self.source.read(Window(y0, x0, y1 - y0, x1 - x0))
        return pixels[b]
