"""What the integrity tests share: a scene and its same-size twin, a model, outputs in a folder
or in moto's S3, and ways to damage a store the way disks, kills and copies do."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import xarray as xr
from click.testing import CliRunner, Result
from moto_s3 import moto_server, s3_client, s3_environment

import tilerun
from tilerun.cli import main
from tilerun.models import build_unet, save_package
from tilerun.sample import write_scene
from tilerun.sinks.layout.store import open_target
from tilerun.sinks.objects import ObjectLocation, object_url

SIZE = 192  # 3 × 3 chunks of 64 px
ARGS = ["--tile", "32", "--chunk", "64", "--threads", "1", "--quiet", "--tissue", "none",
        "--backend", "torch", "--scheduler", "sync"]
OPTIONS = {"tile": 32, "chunk": 64, "threads": 1, "tissue": "none", "backend": "torch",
           "scheduler": "sync"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``scene.tif``, ``twin.tif`` (other pixels, the same size in bytes) and a model."""
    root = tmp_path_factory.mktemp("integrity")
    for name, seed in (("scene", 1), ("twin", 2)):
        write_scene(root / f"{name}.tmp.tif", SIZE, SIZE, seed=seed)
        with rasterio.open(root / f"{name}.tmp.tif") as src:  # uncompressed: the same size
            profile = {**src.profile, "compress": None}
            with rasterio.open(root / f"{name}.tif", "w", **profile) as dst:
                dst.write(src.read())
    torch.manual_seed(0)
    save_package(build_unet("unet", in_channels=3, classes=2, base=4, depth=2),
                 root / "pkg.safetensors", mean=(127.5,) * 3, std=(64.0,) * 3)
    return {"scene": root / "scene.tif", "twin": root / "twin.tif",
            "package": root / "pkg.safetensors", "root": root}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as found:
        s3_client(found).create_bucket(Bucket="out")
        yield found


@pytest.fixture(params=["local", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """Makes an output location by name: a path in a fresh folder, or a fresh bucket URL."""
    if request.param == "local":
        return lambda name: str(tmp_path / name)
    endpoint = request.getfixturevalue("endpoint")
    patch = request.getfixturevalue("monkeypatch")
    for key, value in s3_environment(endpoint).items():
        patch.setenv(key, value)
    patch.delenv("AWS_PROFILE", raising=False)
    prefix = uuid.uuid4().hex[:8]
    return lambda name: f"s3://out/{prefix}/{name}"


def predict(files: dict[str, Path], out: str, *extra: str, scene: str = "scene") -> Result:
    return CliRunner().invoke(main, ["predict", str(files[scene]), "-o", out, "--model",
                                     str(files["package"]), *ARGS, *extra])


def one_error_line(result: Result, *fragments: str) -> str:
    """The run failed with exit 2 and one ``error:`` line holding every fragment."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def logits(out: str | Path) -> np.ndarray:
    return np.asarray(xr.open_zarr(open_target(out)).logits.values)


def reference(files: dict[str, Path], scene: str = "scene", **options: Any) -> np.ndarray:
    """The logits of a clean, uninterrupted run."""
    out = files["root"] / f"ref-{scene}-{uuid.uuid4().hex[:6]}.zarr"
    tilerun.run(files[scene], files["package"], out,
                tilerun.PredictOptions(**{**OPTIONS, **options}))
    return logits(out)


def unfinished(out: str) -> str:
    """Where the unfinished store of ``out`` lives: ``.partial`` beside a path, in place in a
    bucket."""
    return out if object_url(out) else out + ".partial"


def read_key(store: str, key: str) -> bytes | None:
    if object_url(store):
        found = ObjectLocation(store).get(key)
        return None if found is None else found.data
    path = Path(store) / key
    return path.read_bytes() if path.is_file() else None


def write_key(store: str, key: str, data: bytes | None) -> None:
    """Replace (or, with None, delete) one object of a store, under its readers' feet."""
    if object_url(store):
        location = ObjectLocation(store)
        location.delete(key) if data is None else location.put(key, data)
        return
    path = Path(store) / key
    path.unlink() if data is None else path.write_bytes(data)


def truncate(store: str, key: str) -> None:
    """Cut an object short, as a kill inside a write or a failing disk leaves it."""
    data = read_key(store, key)
    assert data is not None, key
    write_key(store, key, data[: len(data) // 3])


def rewrite_keeping_stat(target: Path, source: Path) -> None:
    """Rewrite ``target`` with ``source``'s bytes, then restore its time stamps (``cp -p``)."""
    stat = target.stat()
    assert source.stat().st_size == stat.st_size  # the same size: only the content differs
    target.write_bytes(source.read_bytes())
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
