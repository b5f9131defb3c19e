"""The input guards: regular files only, TIFFs cut short found before any work, GCPs kept."""

from __future__ import annotations

import io
import socket
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint

from tilerun.errors import InputError, TilerunWarning
from tilerun.sources import GeoTIFFSource
from tilerun.sources.guards import check_tiff_complete, require_regular_file, tiff_extent

try:  # `python -m pytest` puts the checkout on sys.path; plain `pytest` puts tests/ there
    from tests.conftest import SHARED_DATA
except ImportError:  # pragma: no cover
    from conftest import SHARED_DATA  # type: ignore[no-redef]

REAL_TIFFS = sorted(p for p in SHARED_DATA.glob("*/*/*")
                    if p.suffix.lower() in (".tif", ".tiff", ".svs", ".ndpi"))


@pytest.mark.parametrize("path", REAL_TIFFS, ids=[p.name for p in REAL_TIFFS])
def test_complete_real_tiffs_are_accepted(path: Path) -> None:
    with path.open("rb") as f:
        assert tiff_extent(f) <= path.stat().st_size
    check_tiff_complete(path, str(path))


def test_a_cut_tiff_is_refused_wherever_it_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "full.tif"
    profile = {"driver": "GTiff", "width": 300, "height": 300, "count": 2, "dtype": "uint16",
               "tiled": True, "blockxsize": 128, "blockysize": 128, "compress": "deflate",
               "crs": "EPSG:32633", "transform": rasterio.Affine(1, 0, 0, 0, -1, 300)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.arange(2 * 300 * 300, dtype=np.uint16).reshape(2, 300, 300))
    data = path.read_bytes()
    cut = tmp_path / "cut.tif"
    for size in range(8, len(data), max(1, len(data) // 97)):
        cut.write_bytes(data[:size])
        with pytest.raises(InputError, match="is cut short"):
            check_tiff_complete(cut, str(cut))


def test_hostile_counts_are_not_read() -> None:
    """A BigTIFF IFD claiming 2**60 entries, and a tile offset array of 2**30 values far past
    the end: the extent is computed without reading (or allocating) any of it."""
    big = b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) + struct.pack("<Q", 2**60)
    assert tiff_extent(io.BytesIO(big)) > len(big)
    entry = struct.pack("<HHI4s", 324, 16, 2**30, struct.pack("<I", 100))
    classic = b"II*\x00" + struct.pack("<IH", 8, 1) + entry + b"\0" * 4
    assert tiff_extent(io.BytesIO(classic)) == 100 + 8 * 2**30


def test_an_ifd_chain_that_loops_ends() -> None:
    looping = b"II*\x00" + struct.pack("<IH", 8, 0) + struct.pack("<I", 8)  # next IFD: itself
    assert tiff_extent(io.BytesIO(looping)) == len(looping)


def test_a_socket_is_not_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(InputError, match=r"is not a regular file \(it is a socket\)"):
            require_regular_file(path, str(path))
        with pytest.raises(InputError, match="is not a regular file"):
            GeoTIFFSource(path)


def _gcp_raster(path: Path, gcps: list[GroundControlPoint]) -> Path:
    profile = {"driver": "GTiff", "width": 32, "height": 32, "count": 1, "dtype": "uint8",
               "gcps": gcps, "crs": "EPSG:32633"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.zeros((1, 32, 32), np.uint8))
    return path


def test_gcps_off_an_affine_grid_give_their_residual(tmp_path: Path) -> None:
    gcps = [GroundControlPoint(row=r, col=c, x=1000 + 2 * c, y=2000 - 2 * r)
            for r, c in ((0, 0), (0, 32), (32, 0))]
    gcps.append(GroundControlPoint(row=32, col=32, x=1000 + 2 * 32 + 8, y=2000 - 2 * 32))
    with pytest.warns(TilerunWarning, match=r"4 GCPs only.*max residual (?!0\.00)\d+\.\d\d px"):
        source = GeoTIFFSource(_gcp_raster(tmp_path / "warped.tif", gcps))
    assert source.georef is not None and source.georef.crs_wkt is not None


def test_too_few_gcps_leave_the_output_unreferenced(tmp_path: Path) -> None:
    gcps = [GroundControlPoint(row=0, col=0, x=1000, y=2000),
            GroundControlPoint(row=32, col=32, x=1064, y=1936)]
    with pytest.warns(TilerunWarning, match="too few to fit a transform"):
        source = GeoTIFFSource(_gcp_raster(tmp_path / "two.tif", gcps))
    assert source.georef is not None and source.georef.crs_wkt is None


def test_an_ordinary_raster_opens_without_any_warning(tmp_path: Path) -> None:
    path = tmp_path / "plain.tif"
    profile = {"driver": "GTiff", "width": 16, "height": 16, "count": 1, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": rasterio.Affine(1, 0, 0, 0, -1, 16)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.zeros((1, 16, 16), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GeoTIFFSource(path)


def test_links_that_lead_nowhere_say_why(tmp_path):
    from tilerun.sources.guards import require_existing

    (tmp_path / "a.tif").symlink_to(tmp_path / "b.tif")
    (tmp_path / "b.tif").symlink_to(tmp_path / "a.tif")
    with pytest.raises(InputError, match=r"a\.tif: is a symbolic link loop"):
        require_existing(tmp_path / "a.tif", "a.tif")
    (tmp_path / "c.tif").symlink_to("gone.tif")
    with pytest.raises(InputError, match=r"c\.tif: is a symbolic link to gone\.tif, which "
                       r"does not exist"):
        require_existing(tmp_path / "c.tif", "c.tif")
    with pytest.raises(InputError, match=r"d\.tif: no such file"):
        require_existing(tmp_path / "d.tif", "d.tif")
    (tmp_path / "e.tif").touch()
    require_existing(tmp_path / "e.tif", "e.tif")
