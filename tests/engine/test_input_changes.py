"""An input rewritten while a run reads it: the output is not published (its chunks could mix
the old and the new pixels), and the run says so in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tilerun
from tilerun.errors import InputError
from tilerun.sample import write_scene

OPTIONS = {"tile": 32, "chunk": 32, "mean": (120,) * 3, "std": (60,) * 3, "tissue": "none",
           "backend": "torch", "threads": 1}


def test_an_input_rewritten_mid_run_is_not_published(tmp_path: Path, small_unet) -> None:
    scene = tmp_path / "scene.tif"
    write_scene(scene, 96, 96, seed=3)
    out = tmp_path / "out.zarr"
    rewritten: list[int] = []

    def rewrite_once(_result: object) -> None:
        if not rewritten:  # a re-download lands while the run reads: new bytes, new time stamp
            write_scene(scene, 96, 96, seed=4)
            stat = scene.stat()
            os.utime(scene, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
            rewritten.append(1)

    with pytest.raises(InputError, match="changed while the run read it") as caught:
        tilerun.run(scene, small_unet, out, tilerun.PredictOptions(**OPTIONS),
                    on_chunk=rewrite_once)
    assert "nothing was published" in str(caught.value)
    assert not out.exists()
    # Unchanged since, the same command runs through.
    summary = tilerun.run(scene, small_unet, out, tilerun.PredictOptions(**OPTIONS))
    assert summary.chunks == 9 and out.exists()
