"""The sink seam: the engine drives any injected sink through its whole life (check, open,
writes, finalize; abort on failure) and never needs the Zarr sink."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import xarray as xr

import tilerun
from tilerun.geometry import Window
from tilerun.sinks import PyramidRequest, Sink


class MemorySink(Sink):
    """Keeps the logits in one array and records the calls it gets."""

    def __init__(self, fail_on_write: int | None = None) -> None:
        self.calls: list[str] = []
        self.fail_on_write = fail_on_write
        self.logits: np.ndarray | None = None
        self.pyramids: PyramidRequest | None = None

    def check(self) -> None:
        self.calls.append("check")

    def open(self, layout: Any, georef: Any, attrs: dict[str, Any], resume: bool) -> None:
        self.calls.append("open")
        self.logits = np.full((layout.classes, layout.height, layout.width), np.nan, np.float32)
        self.attrs = attrs

    def write(self, window: Window, outputs: Mapping[str, np.ndarray]) -> None:
        self.calls.append("write")
        if self.fail_on_write is not None and self.calls.count("write") == self.fail_on_write:
            raise RuntimeError("sink failed")
        assert self.logits is not None
        ys, xs = window.slices()
        self.logits[:, ys, xs] = outputs["logits"]

    def finalize(self, summary: dict[str, Any],
                 pyramids: PyramidRequest | None = None) -> None:
        self.calls.append("finalize")
        self.pyramids = pyramids

    def abort(self) -> None:
        self.calls.append("abort")


OPTIONS = tilerun.PredictOptions(tile=48, chunk=64, backend="torch", scheduler="sync")


def test_an_injected_sink_gets_the_same_logits_as_the_zarr_store(tmp_path, image, small_unet):
    sink = MemorySink()
    summary = tilerun.run(image, small_unet, tmp_path / "unused.zarr", OPTIONS, sink=sink)
    assert not (tmp_path / "unused.zarr").exists()
    writes = summary.chunks
    assert sink.calls == ["check", "open", *["write"] * writes, "finalize"]
    assert "fingerprint" in sink.attrs
    reference = tilerun.run(image, small_unet, tmp_path / "o.zarr", OPTIONS)
    assert reference.chunks == writes
    expected = xr.open_zarr(tmp_path / "o.zarr").logits.values
    np.testing.assert_array_equal(sink.logits, expected)


def test_a_failing_run_aborts_the_sink(tmp_path, image, small_unet):
    sink = MemorySink(fail_on_write=2)
    with pytest.raises(RuntimeError, match="sink failed"):
        tilerun.run(image, small_unet, tmp_path / "o.zarr", OPTIONS, sink=sink)
    assert sink.calls[-1] == "abort" and "finalize" not in sink.calls


def test_the_sink_is_asked_for_pyramids_by_value_and_writes_them_itself(tmp_path, image,
                                                                         small_unet):
    sink = MemorySink()
    options = tilerun.PredictOptions(tile=48, chunk=64, backend="torch", scheduler="sync",
                                     pyramid="labels,probabilities")
    tilerun.run(image, small_unet, tmp_path / "unused.zarr", options, sink=sink)
    assert sink.pyramids == PyramidRequest(("labels", "probabilities"))  # no writer, no path
    assert not (tmp_path / "unused.zarr").exists()
