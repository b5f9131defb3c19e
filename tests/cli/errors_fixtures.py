"""The fixtures and helpers of the CLI error tests (``test_cli_errors.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
from affine import Affine
from click.testing import CliRunner, Result

from tilerun.cli import main

try:  # `python -m pytest` puts the checkout on sys.path; plain `pytest` puts tests/ there
    from tests.conftest import scene_and_package
except ImportError:  # pragma: no cover
    from conftest import scene_and_package  # type: ignore[no-redef]

TRANSFORM = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_200_000.0)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A 3-band scene, a 3-channel model package, and a few bad inputs, shared by the module."""
    root = tmp_path_factory.mktemp("cli")
    made = scene_and_package(root)
    scene, package = made["scene"], made["package"]
    text = root / "text.tif"
    text.write_text("not a raster at all\n")
    complex_tif = root / "complex.tif"
    with rasterio.open(
        complex_tif,
        "w",
        driver="GTiff",
        count=1,
        height=16,
        width=16,
        dtype="complex64",
        crs="EPSG:32633",
        transform=TRANSFORM,
    ) as dst:
        dst.write((np.ones((1, 16, 16)) + 2j).astype(np.complex64))
    cint16 = root / "cint16.tif"
    with rasterio.open(
        cint16,
        "w",
        driver="GTiff",
        count=1,
        height=16,
        width=16,
        dtype="complex_int16",
        crs="EPSG:32633",
        transform=TRANSFORM,
    ):
        pass
    return {
        "scene": scene,
        "package": package,
        "text": text,
        "complex": complex_tif,
        "cint16": cint16,
    }


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def predict(files, source, out, *extra: object, quiet: bool = True) -> Result:
    flags = ["--quiet"] if quiet else []
    return invoke(
        "predict",
        source,
        "-o",
        out,
        "--model",
        files["package"],
        "--tile",
        32,
        "--chunk",
        64,
        *flags,
        *extra,
    )


def assert_clean_error(result: Result, *names: object) -> str:
    """Exit 2, nothing on stdout, stderr exactly one line ``error: …`` naming every ``names``."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # not an uncaught traceback
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error:"), line
    for name in names:
        assert str(name) in line, (name, line)
    return line


def assert_no_output(out: Path) -> None:
    assert not out.exists()
    assert not out.with_name(out.name + ".partial").exists()


def snapshot(path: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of every file under ``path`` (or of ``path`` itself)."""
    paths = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}
