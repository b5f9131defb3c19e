"""A Zarr sink writes the viewer pyramids it is asked for into its own store, before it flags
the store complete: the engine hands it a :class:`PyramidRequest`, never a writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from tilerun.geometry import Window
from tilerun.sinks import LABEL_FILL, OutputLayout, PyramidRequest, ZarrSink, sink_for
from tilerun.sinks.layout import open_target
from tilerun.sinks.zarr_sink import ZarrStoreSink

H, W, K, CHUNK = 300, 200, 2, 64


def _fill(sink: ZarrStoreSink) -> np.ndarray:
    """Open ``sink`` for a labels + logits layout, write every chunk; the labels."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (K, H, W)).astype(np.float32)
    logits[:, :40, :30] = np.nan
    labels = np.nan_to_num(logits, nan=0).argmax(axis=0).astype(np.uint8)
    labels[:40, :30] = LABEL_FILL
    layout = OutputLayout(H, W, K, CHUNK, variables=("logits", "labels"))
    sink.open(layout, None, {}, resume=False)
    for y in range(0, H, CHUNK):
        for x in range(0, W, CHUNK):
            window = Window(y, x, min(CHUNK, H - y), min(CHUNK, W - x))
            ys, xs = window.slices()
            sink.write(window, {"logits": logits[:, ys, xs], "labels": labels[ys, xs]})
    return labels


def test_the_local_sink_writes_the_requested_pyramids_into_what_it_publishes(tmp_path: Path):
    out = tmp_path / "out.zarr"
    sink = ZarrSink(out)
    labels = _fill(sink)
    request = PyramidRequest(("labels", "probabilities"), pixel_size=(0.5, 0.5),
                             unit="micrometer", probabilities_name="probs")
    sink.finalize({}, request)
    group = zarr.open_group(out, mode="r")
    assert group.attrs["tilerun"]["complete"] is True
    np.testing.assert_array_equal(np.asarray(group["labels_pyramid"]["1"][:]),
                                  labels[::2, ::2])
    multiscale = group["labels_pyramid"].attrs["ome"]["multiscales"][0]
    assert multiscale["axes"][0]["unit"] == "micrometer"
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == [0.5, 0.5]
    assert group["probs"]["0"].shape == (K, H, W)
    consolidated = json.loads((out / "zarr.json").read_text())["consolidated_metadata"]
    assert {"labels_pyramid", "probs"} <= set(consolidated["metadata"])
    assert not out.with_name("out.zarr.partial").exists()


def test_without_a_request_the_sink_writes_no_pyramid(tmp_path: Path):
    out = tmp_path / "out.zarr"
    sink = ZarrSink(out)
    _fill(sink)
    sink.finalize({}, None)
    assert set(zarr.open_group(out, mode="r").group_keys()) == {"tilerun"}


def test_the_object_store_sink_writes_them_into_its_own_store(tmp_path: Path):
    pytest.importorskip("obstore")
    url = (tmp_path / "out.zarr").as_uri()  # the object-store back end, on a file:// URL
    sink = sink_for(url)
    assert not isinstance(sink, ZarrSink)
    labels = _fill(sink)  # type: ignore[arg-type]
    sink.finalize({}, PyramidRequest(("labels",)))
    group = zarr.open_group(open_target(url), mode="r")
    assert group.attrs["tilerun"]["complete"] is True
    np.testing.assert_array_equal(np.asarray(group["labels_pyramid"]["1"][:]),
                                  labels[::2, ::2])


def test_a_request_names_only_known_pyramids():
    with pytest.raises(ValueError, match="unknown pyramid"):
        PyramidRequest(("labels", "logits"))
