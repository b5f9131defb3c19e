"""Hostile inputs, each through the CLI: one ``error: <file>: <problem>`` line, exit 2, no
traceback, warning or log line, and no output left behind (the input side of the corpus; the
outputs are in ``test_hostile_outputs.py``).

Each row of :data:`CASES` builds its hostile file in ``tmp_path`` and gives the CLI arguments
that differ from a good run, with the message expected. Every run is bounded
(:func:`_invoke`), so a case that hangs fails instead of stalling the suite.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import torch
import xarray as xr
from click.testing import CliRunner, Result
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.transform import from_gcps

from tilerun.cli import main
from tilerun.engine.budget import available_memory, estimate_memory
from tilerun.engine.options import PredictOptions
from tilerun.geometry import make_grid
from tilerun.sources import open_source

try:  # `python -m pytest` puts the checkout on sys.path; plain `pytest` puts tests/ there
    from tests.conftest import scene_and_package, shared_file
except ImportError:  # pragma: no cover
    from conftest import scene_and_package, shared_file  # type: ignore[no-redef]

#: Seconds a case may take; a hang (a FIFO read, a task graph that never ends) fails the test.
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return scene_and_package(tmp_path_factory.mktemp("hostile-inputs"))


# -- building hostile files --------------------------------------------------------------------


def _fifo(tmp: Path, name: str = "pipe.tif") -> Path:
    path = tmp / name
    os.mkfifo(path)
    return path


def _zip(tmp: Path, name: str, members: dict[str, bytes]) -> Path:
    path = tmp / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def _pickle_as_pt2(tmp: Path) -> Path:
    """A torch.save checkpoint (a zip holding a pickle) under torch.export's suffix."""
    path = tmp / "weights.pt2"
    torch.save({"w": torch.zeros(2)}, path)
    return path


def _absurd_safetensors(tmp: Path) -> Path:
    """A safetensors file whose header length (first 8 bytes) is 2**60."""
    path = tmp / "broken.safetensors"
    path.write_bytes((2**60).to_bytes(8, "little") + b'{"__metadata__": {}}' + b"\0" * 64)
    return path


def _cut(source: Path, tmp: Path, size: int, name: str = "cut.tif") -> Path:
    path = tmp / name
    path.write_bytes(source.read_bytes()[:size])
    return path


def _synthetic_cog(tmp: Path) -> Path:
    """A 3-band tiled, compressed COG with overviews, written by GDAL's COG driver."""
    path = tmp / "full_cog.tif"
    data = np.random.default_rng(0).integers(0, 255, (3, 600, 600), dtype=np.uint8)
    profile = {"driver": "COG", "width": 600, "height": 600, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": rasterio.Affine(10, 0, 5e5, 0, -10, 5.2e6),
               "blocksize": 256, "compress": "deflate", "overview_count": 1}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _after_first_ifd(path: Path) -> int:
    """The end of a classic TIFF's first IFD: the tag values stored out of line (tile offsets,
    GeoTIFF keys) lie past it, so a file cut there has a whole IFD pointing nowhere."""
    data = path.read_bytes()
    order = "<" if data[:2] == b"II" else ">"
    first = struct.unpack(order + "I", data[4:8])[0]
    entries = struct.unpack(order + "H", data[first: first + 2])[0]
    return first + 2 + 12 * entries + 4


# -- the corpus ----------------------------------------------------------------------------------

Build = Callable[[dict[str, Path], Path], tuple[Path, Path, list[str]]]


@dataclass(frozen=True)
class Case:
    """``build(files, tmp) -> (input, model, extra CLI args)``; ``subject`` names what the
    line must start with after ``error: `` (``input``, ``model`` or an option)."""

    id: str
    build: Build
    message: str
    subject: str


def _input(make: Callable[[Path], Path], *extra: str) -> Build:
    return lambda files, tmp: (make(tmp), files["package"], list(extra))


def _model(make: Callable[[Path], Path], *extra: str) -> Build:
    return lambda files, tmp: (files["scene"], make(tmp), list(extra))


def _options(*extra: str) -> Build:
    return lambda files, tmp: (files["scene"], files["package"], list(extra))


def _shared_cog_cut(size: int) -> Callable[[Path], Path]:
    return lambda tmp: _cut(shared_file("geotiff/rasterio/cogeo.tif"), tmp, size)


def _synthetic_cog_cut(where: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        cog = _synthetic_cog(tmp)
        size = _after_first_ifd(cog) if where == "header" else cog.stat().st_size // 2
        return _cut(cog, tmp, size)

    return make


CUT_SHORT = r"is cut short: its TIFF header refers to bytes up to [\d,]+ but the file has [\d,]+"
NOT_TORCHSCRIPT = r"is not a TorchScript archive tilerun can read \(.+\)"
CORRUPT_HEADER = r"safetensors header is corrupt: it declares 1,152,921,504,606,846,976 bytes"

CASES = [
    # 1. not a regular file: GDAL would wait forever for a writer
    Case("input-fifo", _input(_fifo), r"is not a regular file \(it is a FIFO\)", "input"),
    Case("model-fifo", _model(lambda tmp: _fifo(tmp, "model.pt")), r"is not a regular file",
         "model"),
    # 2. chunks: too small (the task graph explodes), too small for the tile, too big to store
    Case("chunk-1", _options("--chunk", "1"), r"must be ≥ 8 px, got 1", "--chunk"),
    Case("chunk-below-tile/8", _options("--tile", "512", "--chunk", "16"),
         r"16 px chunks are too small for 512 px tiles: .*; use --chunk 64 or more", "--chunk"),
    Case("chunk-too-big", _options("--chunk", "24000"),  # refused for memory or for its size
         r"24000 px chunks (need at least|of 2 class\(es\) are)", "--chunk"),
    # 3. a tile no machine can hold
    Case("tile-100000", _options("--tile", "100000"),
         r"100000 px tiles need at least [\d.]+ TiB of memory \(model batches of 8 tiles: .*\); "
         r"this machine has .* available", "--tile"),
    # 4. overlaps float() accepts but that mean nothing
    *(Case(f"overlap-{v}", _options(f"--overlap={v}"),
           rf"must be a fraction in \[0, 1\) or pixels ≥ 0, got '{re.escape(v)}'", "--overlap")
      for v in ("nan", "inf", "-inf", "-5", "-0.5")),
    # 5. model files that are not what their content or name suggests
    Case("zip-with-constants.pkl", _model(lambda tmp: _zip(tmp, "m.pt", {
        "x/constants.pkl": b"junk"})), NOT_TORCHSCRIPT, "model"),
    Case("zip-with-code", _model(lambda tmp: _zip(tmp, "m.pt", {
        "x/code/__torch__/m.py": b"junk", "x/data.pkl": b"junk"})), NOT_TORCHSCRIPT, "model"),
    Case("zip-of-nothing-known", _model(lambda tmp: _zip(tmp, "m.pt", {"x/readme": b"hi"})),
         r"is a zip archive but not a TorchScript archive, torch.export program or torch.save "
         r"checkpoint", "model"),
    Case("junk-pt2", _model(lambda tmp: _zip(tmp, "m.pt2", {"x/readme": b"hi"})),
         r"is not a torch.export program tilerun can read \(.+\)", "model"),
    Case("pt2-with-bad-json", _model(lambda tmp: _zip(tmp, "m.pt2", {
        "x/archive_format": b"pt2", "x/models/model.json": b"{not json"})),
         r"is not a torch.export program tilerun can read \(x/models/model.json is not valid "
         r"JSON\)", "model"),
    Case("pickle-named-pt2", _model(_pickle_as_pt2),
         r"is a pickled checkpoint, and unpickling can run code", "model"),
    Case("pickle-named-pt2-allowed", _model(_pickle_as_pt2, "--allow-pickle"),
         r"a pickled state dict needs a spec", "model"),
    Case("safetensors-absurd-header", _model(_absurd_safetensors), CORRUPT_HEADER, "model"),
    Case("safetensors-absurd-header-allowed", _model(_absurd_safetensors, "--allow-pickle"),
         CORRUPT_HEADER, "model"),
    # 6. TIFFs cut short: GDAL opens them (warning about what it dropped), reads then fail
    Case("cog-cut-in-header", _input(_shared_cog_cut(600)), CUT_SHORT, "input"),
    Case("cog-cut-in-data", _input(_shared_cog_cut(100_000)), CUT_SHORT, "input"),
    Case("synthetic-cog-cut-after-ifd", _input(_synthetic_cog_cut("header")), CUT_SHORT,
         "input"),
    Case("synthetic-cog-cut-in-half", _input(_synthetic_cog_cut("data")), CUT_SHORT, "input"),
]


def _invoke(args: list[str], tmp: Path) -> Result:
    """Run the CLI in a thread and wait at most :data:`TIMEOUT_S`; on a hang, open any FIFO
    in ``tmp`` for writing (which ends a reader's wait) and fail."""
    done: list[Result] = []
    worker = threading.Thread(target=lambda: done.append(CliRunner().invoke(main, args)),
                              daemon=True)
    worker.start()
    worker.join(TIMEOUT_S)
    if worker.is_alive():
        for fifo in tmp.iterdir():
            if fifo.is_fifo():
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"tilerun {' '.join(args)} still running after {TIMEOUT_S} s")
    return done[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_error_line(case: Case, files: dict[str, Path],
                                         tmp_path: Path) -> None:
    if case.id == "tile-100000" and available_memory() is None:
        pytest.skip("available memory unknown here: the memory check is skipped")
    source, model, extra = case.build(files, tmp_path)
    out = tmp_path / "out.zarr"
    args = ["predict", str(source), "-o", str(out), "--model", str(model), "--quiet",
            "--backend", "torch", "--tile", "32", "--chunk", "64", *extra]
    result = _invoke(args, tmp_path)

    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # not an uncaught traceback
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # no warnings, log lines or traceback around it
    subject = {"input": str(source), "model": str(model)}.get(case.subject, case.subject)
    assert lines[0].startswith(f"error: {subject}: "), lines[0]
    assert re.search(case.message, lines[0]), lines[0]
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


# -- 7. GCPs only: not an error, but the georeferencing must survive -----------------------------


def test_gcp_georeferenced_input_keeps_a_fitted_transform(files: dict[str, Path],
                                                         tmp_path: Path) -> None:
    """A raster placed by GCPs only has no geotransform; the output gets the affine fitted to
    the GCPs and their CRS, and one warning line says so."""
    gcps = [GroundControlPoint(row=r, col=c, x=500_000 + 10 * c, y=5_200_000 - 10 * r)
            for r, c in ((0, 0), (0, 96), (96, 0), (96, 96), (48, 40))]
    source = tmp_path / "gcps.tif"
    profile = {"driver": "GTiff", "width": 96, "height": 96, "count": 3, "dtype": "uint8",
               "gcps": gcps, "crs": "EPSG:32633"}
    with rasterio.open(source, "w", **profile) as dst:
        dst.write(np.random.default_rng(2).integers(0, 255, (3, 96, 96), dtype=np.uint8))
    out = tmp_path / "out.zarr"
    result = _invoke(["predict", str(source), "-o", str(out), "--model", str(files["package"]),
                      "--quiet", "--backend", "torch", "--tile", "32", "--chunk", "64"], tmp_path)

    assert result.exit_code == 0, (result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(rf"warning: {re.escape(str(source))}: georeferenced by 5 GCPs only: the "
                        r"output's transform was fitted to them \(max residual 0\.00 px\)",
                        lines[0]), lines[0]
    ds = xr.open_zarr(out, decode_coords="all")
    assert np.allclose(tuple(ds.rio.transform())[:6], tuple(from_gcps(gcps))[:6])
    assert ds.rio.crs == CRS.from_epsg(32633)


# -- the memory estimate refuses only what cannot fit ----------------------------------------------


def test_an_ordinary_run_is_estimated_well_under_a_gigabyte() -> None:
    """The estimate is a floor: a default run (256 px tiles, 1024 px chunks) on a large
    image must come out small, so that the check never refuses an ordinary run."""
    image = da.zeros((3, 50_000, 50_000), dtype=np.uint8, chunks=(3, 4096, 4096))
    options = PredictOptions(threads=6)
    grid = make_grid(50_000, 50_000, 256, 0.25)
    estimate = estimate_memory(grid, options, open_source(image), classes=4)
    assert estimate.chunks == 6 and estimate.processes == 1
    assert estimate.host + estimate.device < 2**30


def test_case_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
