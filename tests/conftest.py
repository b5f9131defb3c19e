"""Shared fixtures: real data from ../shared/data, tiny models, synthetic images."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

SHARED_DATA = Path(
    os.environ.get(
        "TILERUN_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    )
).resolve()


@pytest.fixture(autouse=True, scope="session")
def _conversion_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Backend conversions go to a cache of the test session, not the user's."""
    os.environ["TILERUN_CACHE_DIR"] = str(tmp_path_factory.mktemp("tilerun-cache"))


def shared_file(relative: str) -> Path:
    """A file from ../shared/data; skip (or fail when TILERUN_REQUIRE_SHARED_DATA=1) if absent."""
    path = SHARED_DATA / relative
    if not path.is_file():
        reason = f"real test data {path} is absent (../shared/data not beside the checkout)"
        if os.environ.get("TILERUN_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


class Identity(nn.Module):
    """Output = input: blending must then reproduce the input exactly."""

    downsampling = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Asymmetric(nn.Module):
    """A fixed, position-dependent, non-symmetric convolution (deterministic weights)."""

    downsampling = 1

    def __init__(self, bands: int = 3, classes: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(bands, classes, 5, padding=2)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g))
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.fixture
def identity() -> Identity:
    return Identity()


@pytest.fixture
def asymmetric() -> Asymmetric:
    return Asymmetric().eval()


@pytest.fixture
def small_unet() -> nn.Module:
    from tilerun.models import build_unet

    torch.manual_seed(0)
    return build_unet("unet", in_channels=3, classes=3, base=4, depth=2, batch_norm=True).eval()


@pytest.fixture
def image() -> np.ndarray:
    """A float32 (3, 150, 170) image: not a multiple of any tile, small enough to be quick."""
    return np.random.default_rng(0).normal(size=(3, 150, 170)).astype(np.float32)


def scene_and_package(root: Path) -> dict[str, Path]:
    """A 96² 3-band scene and a tiny 2-class U-Net package beside it, for CLI tests."""
    from tilerun.models import build_unet, save_package
    from tilerun.sample import write_scene

    scene = root / "scene.tif"
    write_scene(scene, 96, 96, seed=1)
    package = root / "pkg.safetensors"
    save_package(build_unet("unet", in_channels=3, classes=2, base=4, depth=2), package,
                 mean=(127.5,) * 3, std=(64.0,) * 3)
    return {"scene": scene, "package": package}


def interrupt_after(chunks: int) -> Callable[[object], None]:
    """An ``on_chunk`` callback that interrupts a run after ``chunks`` chunks, as Ctrl-C."""
    seen: list[object] = []

    def stop(result: object) -> None:
        seen.append(result)
        if len(seen) == chunks:
            raise KeyboardInterrupt

    return stop


def settle(listing: Callable[[], list[str]], pause: float = 0.3) -> list[str]:
    """Wait until ``listing()`` stops changing, and return it: after an interrupt, chunk tasks
    already running finish (and write) in the background."""
    before: list[str] = []
    while before != (now := listing()):
        before = now
        time.sleep(pause)
    return now


def predict_cli(files: dict[str, Path], out: Path, *extra: str) -> Any:
    """``tilerun predict`` through click's runner on :func:`scene_and_package`'s files
    (32 px tiles, 64 px chunks), with ``extra`` arguments."""
    from click.testing import CliRunner

    from tilerun.cli import main

    return CliRunner().invoke(main, [
        "predict", str(files["scene"]), "-o", str(out), "--model", str(files["package"]),
        "--tile", "32", "--chunk", "64", *extra,
    ])  # fmt: skip


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    torch.set_num_threads(1)
