"""The ``probabilities`` variable of the Zarr sink: layout, CF encoding, what xarray decodes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from tilerun.errors import OutputError
from tilerun.geometry import Window
from tilerun.sinks import PROBABILITY_FILL, PROBABILITY_SCALE, OutputLayout, ZarrSink


def _store(tmp_path, codes: np.ndarray, chunk: int = 4) -> ZarrSink:
    classes, height, width = codes.shape
    layout = OutputLayout(height, width, classes, chunk, variables=("probabilities",))
    sink = ZarrSink(tmp_path / "o.zarr")
    sink.open(layout, None, {"fingerprint": "test"})
    for y in range(0, height, chunk):
        for x in range(0, width, chunk):
            window = Window(y, x, min(chunk, height - y), min(chunk, width - x))
            ys, xs = window.slices()
            sink.write(window, {"probabilities": codes[:, ys, xs]})
    sink.finalize({})
    return sink


def test_xarray_decodes_codes_to_probabilities_and_nan(tmp_path):
    codes = np.zeros((2, 6, 7), np.uint8)
    codes[0], codes[1] = 254, 0
    codes[:, 1, 1] = (127, 127)
    codes[:, 5, 6] = PROBABILITY_FILL
    _store(tmp_path, codes)
    meta = json.loads((tmp_path / "o.zarr" / "probabilities" / "zarr.json").read_text())
    assert meta["data_type"] == "uint8"
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [2, 4, 4]
    # output_codecs(), like the other variables: Blosc, then Zarr's crc32c checksum
    assert [c["name"] for c in meta["codecs"][-2:]] == ["blosc", "crc32c"]
    attrs = meta["attributes"]
    assert attrs["scale_factor"] == 1 / PROBABILITY_SCALE
    assert attrs["add_offset"] == 0
    assert attrs["_FillValue"] == PROBABILITY_FILL
    p = xr.open_zarr(tmp_path / "o.zarr", decode_coords="all").probabilities
    assert p.dims == ("class", "y", "x")
    assert np.issubdtype(p.dtype, np.floating)
    values = p.values
    assert values[0, 0, 0] == 1.0 and values[1, 0, 0] == 0.0  # both ends exact
    assert values[0, 1, 1] == pytest.approx(0.5, abs=1 / 508)
    assert np.isnan(values[:, 5, 6]).all()
    assert np.isfinite(values).sum() == values.size - 2
    stored = xr.open_zarr(tmp_path / "o.zarr", mask_and_scale=False).probabilities.values
    np.testing.assert_array_equal(stored, codes)


def test_layout_accepts_any_combination_and_refuses_unknown_names():
    for variables in [("probabilities",), ("labels", "probabilities"),
                      ("logits", "labels", "probabilities")]:
        assert OutputLayout(8, 8, 3, 4, variables).variables == variables
    with pytest.raises(OutputError, match="--write"):
        OutputLayout(8, 8, 3, 4, ("labels", "probability"))


def test_layout_probability_activation():
    assert OutputLayout(8, 8, 3, 4, ("probabilities",)).probability_activation == "softmax"
    sigmoid = OutputLayout(8, 8, 3, 4, ("probabilities",), activation="sigmoid")
    assert sigmoid.probability_activation == "sigmoid"
    one_class = OutputLayout(8, 8, 1, 4, ("probabilities",), activation="softmax")
    assert one_class.probability_activation == "sigmoid"
    with pytest.raises(OutputError, match="activation"):
        OutputLayout(8, 8, 3, 4, ("probabilities",), activation="none")
    OutputLayout(8, 8, 3, 4, ("logits",), activation="none")  # fine without probabilities


def test_write_refuses_a_chunk_without_every_variable(tmp_path):
    layout = OutputLayout(4, 4, 2, 4, variables=("logits", "probabilities"))
    sink = ZarrSink(tmp_path / "o.zarr")
    sink.open(layout, None, {"fingerprint": "test"})
    try:
        with pytest.raises(ValueError, match="probabilities"):
            sink.write(Window(0, 0, 4, 4), {"logits": np.zeros((2, 4, 4), np.float32)})
        assert not sink.done().any()  # no completion record for a half-written chunk
    finally:
        sink.abort()
