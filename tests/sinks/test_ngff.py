"""OME-NGFF (OME-Zarr 0.5) pyramids written into a finished tilerun store.

The store is written by :class:`tilerun.sinks.ZarrSink` itself (labels 1000 × 700 uint8 with
256-pixel chunks and a nodata corner, logits 3 × 1000 × 700), once per module.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from tilerun.errors import InputError, OptionError, OutputExistsError, TilerunWarning
from tilerun.geometry import Window
from tilerun.sinks import LABEL_FILL, OutputLayout, ZarrSink
from tilerun.sinks.pyramids.ngff import (
    level_count,
    mean_pool_2x2,
    write_label_pyramid,
    write_probability_pyramid,
)

H, W, K, CHUNK = 1000, 700, 3, 256
PIXEL = (0.5, 0.25)
COLOURS = ["#ff0000", (0, 128, 0), "#0000ff80"]


def make_store(path: Path, height: int, width: int, classes: int, chunk: int) -> Path:
    """A complete tilerun store, written the way a run writes it; nodata top-left corner."""
    rng = np.random.default_rng(0)
    logits = (rng.normal(0, 3, (classes, height, width))).astype(np.float32)
    nodata = np.zeros((height, width), bool)
    nodata[: height // 5, : width // 7 + 1] = True
    logits[:, nodata] = np.nan
    if classes == 1:
        labels = (logits[0] > 0).astype(np.uint8)
    else:
        labels = np.nan_to_num(logits, nan=0).argmax(axis=0).astype(np.uint8)
    labels[nodata] = LABEL_FILL
    layout = OutputLayout(
        height, width, classes, chunk, variables=("logits", "labels"),
        class_names=tuple(f"class {k}" for k in range(classes)),
    )  # fmt: skip
    sink = ZarrSink(path)
    sink.open(layout, None, {"class_names": list(layout.class_names or ())})
    for y in range(0, height, chunk):
        for x in range(0, width, chunk):
            window = Window(y, x, min(chunk, height - y), min(chunk, width - x))
            ys, xs = window.slices()
            sink.write(window, {"logits": logits[:, ys, xs], "labels": labels[ys, xs]})
    sink.finalize({})
    return path


class Written:
    def __init__(self, root: Path) -> None:
        self.path = make_store(root / "out.zarr", H, W, K, CHUNK)
        self.labels = write_label_pyramid(
            self.path, pixel_size=PIXEL, unit="micrometer", colors=COLOURS
        )
        self.probs = write_probability_pyramid(self.path, pixel_size=PIXEL, unit="um")
        group = zarr.open_group(self.path, mode="r", use_consolidated=False)
        self.label_data = np.asarray(group["labels"][:])
        self.logits = np.asarray(group["logits"][:])


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    return Written(tmp_path_factory.mktemp("ngff"))


def attrs(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / "zarr.json").read_text())["attributes"])


def level(group_path: Path, k: int) -> np.ndarray:
    return np.asarray(zarr.open_array(group_path / str(k), mode="r")[:])


def pool_reference(a: np.ndarray) -> np.ndarray:
    """NaN-ignoring 2×2 mean over the last two axes, ceil at odd edges (numpy, float64)."""
    h, w = a.shape[-2:]
    pad = [(0, 0)] * (a.ndim - 2) + [(0, h % 2), (0, w % 2)]
    b = np.pad(a.astype(np.float64), pad, constant_values=np.nan)
    b = b.reshape(*b.shape[:-2], b.shape[-2] // 2, 2, b.shape[-1] // 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return np.nanmean(b, axis=(-3, -1))


# --- the JSON, against the spec's rules ------------------------------------------------------


def check_multiscales(group_path: Path, axes: list[tuple[str, str]], unit: str | None) -> None:
    """OME-Zarr 0.5 multiscales rules, checked by hand (independent of any library)."""
    root = json.loads((group_path / "zarr.json").read_text())
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    ome = root["attributes"]["ome"]
    assert ome["version"] == "0.5"
    assert "multiscales" not in root["attributes"]  # 0.5: everything under "ome"
    (ms,) = ome["multiscales"]
    assert [(a["name"], a["type"]) for a in ms["axes"]] == axes
    for a in ms["axes"]:
        assert a.get("unit") == (unit if a["type"] == "space" else None)
    datasets = ms["datasets"]
    assert [d["path"] for d in datasets] == [str(k) for k in range(len(datasets))]
    previous_shape = None
    for k, d in enumerate(datasets):
        transforms = d["coordinateTransformations"]
        assert [t["type"] for t in transforms] == ["scale", "translation"]
        scale, translation = transforms[0]["scale"], transforms[1]["translation"]
        assert len(scale) == len(translation) == len(axes)
        meta = json.loads((group_path / d["path"] / "zarr.json").read_text())
        assert meta["node_type"] == "array"
        assert meta["dimension_names"] == [a for a, _ in axes]
        shape = meta["shape"]
        for i, (_, kind) in enumerate(axes):
            if kind == "space":
                p = PIXEL[i - (len(axes) - 2)]
                assert scale[i] == pytest.approx(p * 2**k)
                assert translation[i] == pytest.approx(p * (2**k - 1) / 2)
                if previous_shape is not None:
                    assert shape[i] == math.ceil(previous_shape[i] / 2)
            else:
                assert scale[i] == 1.0 and translation[i] == 0.0
                assert previous_shape is None or shape[i] == previous_shape[i]
        previous_shape = shape
    assert (
        max(previous_shape[-2:])
        <= 256
        < max(  # smallest level fits min_size, no extra
            math.ceil(n / 2 ** (len(datasets) - 2)) for n in (H, W)
        )
    )


def test_label_pyramid_json(written: Written) -> None:
    group = written.labels.path
    check_multiscales(group, [("y", "space"), ("x", "space")], "micrometer")
    assert written.labels.shapes == ((1000, 700), (500, 350), (250, 175))
    ome = attrs(group)["ome"]
    assert ome["multiscales"][0]["type"] == "nearest"
    image_label = ome["image-label"]
    assert image_label["colors"] == [
        {"label-value": 0, "rgba": [255, 0, 0, 255]},
        {"label-value": 1, "rgba": [0, 128, 0, 255]},
        {"label-value": 2, "rgba": [0, 0, 255, 128]},
        {"label-value": LABEL_FILL, "rgba": [0, 0, 0, 0]},
    ]
    assert [p["class"] for p in image_label["properties"]] == [
        "class_0", "class_1", "class_2", "nodata"
    ]  # fmt: skip


def test_probability_pyramid_json(written: Written) -> None:
    group = written.probs.path
    check_multiscales(group, [("c", "channel"), ("y", "space"), ("x", "space")], "micrometer")
    assert written.probs.shapes == ((3, 1000, 700), (3, 500, 350), (3, 250, 175))
    ome = attrs(group)["ome"]
    assert ome["multiscales"][0]["type"] == "mean"
    assert [c["label"] for c in ome["omero"]["channels"]] == ["class 0", "class 1", "class 2"]


# --- the data --------------------------------------------------------------------------------


def test_label_levels_are_strided_subsamples(written: Written) -> None:
    for k in range(written.labels.levels):
        data = level(written.labels.path, k)
        assert data.dtype == np.uint8
        np.testing.assert_array_equal(data, written.label_data[:: 2**k, :: 2**k])
    chunks = zarr.open_array(written.labels.path / "0", mode="r").chunks
    assert chunks == (CHUNK, CHUNK)


def test_probabilities_sum_to_one_and_pool_by_mean(written: Written) -> None:
    nodata = np.isnan(written.logits).any(axis=0)
    z = np.where(nodata, 0.0, written.logits.astype(np.float64))
    softmax = np.exp(z - z.max(axis=0)) / np.exp(z - z.max(axis=0)).sum(axis=0)
    previous = None
    for k in range(written.probs.levels):
        data = level(written.probs.path, k)
        assert data.dtype == np.float32 and data.shape[0] == K
        valid = ~np.isnan(data).any(axis=0)
        np.testing.assert_allclose(data[:, valid].sum(axis=0), 1.0, atol=1e-3)
        assert (np.isnan(data).all(axis=0) == ~valid).all()  # NaN in all classes or none
        if previous is None:
            np.testing.assert_array_equal(valid, ~nodata)
            np.testing.assert_allclose(data[:, valid], softmax[:, valid], atol=1e-6)
        else:
            expected = pool_reference(previous)
            np.testing.assert_allclose(data, expected, rtol=1e-6, atol=1e-7, equal_nan=True)
        previous = data


def test_store_still_opens_with_xarray_and_consolidated_zarr(written: Written) -> None:
    ds = xr.open_zarr(written.path, decode_coords="all")
    assert set(ds.data_vars) >= {"logits", "labels"}
    group = zarr.open_group(written.path, mode="r")  # consolidated metadata
    assert group["labels_pyramid"]["2"].shape == (250, 175)
    assert group["probabilities"]["1"].shape == (3, 500, 350)
    assert not list(written.path.glob("*.partial")) and not list(written.path.glob("*.replaced"))


# --- validation by the OME-Zarr libraries (test extra) ----------------------------------------


def test_ome_zarr_models_validate(written: Written) -> None:
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel

    label = ImageLabel.from_zarr(zarr.open_group(written.labels.path, mode="r"))
    assert label.attributes.ome.image_label is not None
    assert len(label.attributes.ome.multiscales[0].datasets) == 3
    image = Image.from_zarr(zarr.open_group(written.probs.path, mode="r"))
    assert [d.path for d in image.attributes.ome.multiscales[0].datasets] == ["0", "1", "2"]


def test_ome_zarr_reader_reads_levels(written: Written) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    for pyramid, shapes in ((written.labels, written.labels.shapes),
                            (written.probs, written.probs.shapes)):  # fmt: skip
        location = parse_url(str(pyramid.path))
        assert location is not None and location.version == "0.5"
        node = next(iter(Reader(location)()))
        assert node.specs and any(isinstance(s, Multiscales) for s in node.specs)
        assert [tuple(d.shape) for d in node.data] == list(shapes)
        if pyramid is written.labels:
            assert any(isinstance(s, Label) for s in node.specs)
            np.testing.assert_array_equal(np.asarray(node.data[1]), written.label_data[::2, ::2])


# --- variants and errors (small stores) ------------------------------------------------------


def test_float16_binary_odd_chunks(tmp_path: Path) -> None:
    path = make_store(tmp_path / "bin.zarr", 45, 31, 1, 15)  # odd chunk size, odd shapes
    pyr = write_probability_pyramid(path, dtype="float16", min_size=8)
    assert pyr.shapes == ((2, 45, 31), (2, 23, 16), (2, 12, 8), (2, 6, 4))
    assert pyr.scales[1] == (1.0, 2.0, 2.0)  # no pixel size: pixel units
    logits = np.asarray(zarr.open_array(path / "logits", mode="r")[:], np.float64)
    sigmoid = 1 / (1 + np.exp(-logits[0]))
    previous = None
    for k in range(pyr.levels):
        data = level(pyr.path, k)
        assert data.dtype == np.float16
        valid = ~np.isnan(data).any(axis=0)
        np.testing.assert_allclose(data[:, valid].astype(np.float32).sum(axis=0), 1, atol=2e-3)
        if previous is None:
            np.testing.assert_allclose(data[1], sigmoid, atol=1e-3, equal_nan=True)
        else:
            expected = pool_reference(previous.astype(np.float32)).astype(np.float16)
            np.testing.assert_array_equal(data, expected)
        previous = data
    labels = write_label_pyramid(path, levels=2, name="lab")
    assert "colors" not in attrs(labels.path)["ome"]["image-label"]
    np.testing.assert_array_equal(
        level(labels.path, 1), np.asarray(zarr.open_array(path / "labels")[::2, ::2])
    )
    names = [c["label"] for c in attrs(pyr.path)["ome"]["omero"]["channels"]]
    assert names == ["not class 0", "class 0"]


def test_mean_pool_chunkwise_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    data = rng.random((2, 23, 17)).astype(np.float32)
    data[:, 4:9, 3:6] = np.nan
    for chunks in ((2, 5, 7), (1, 8, 4), (2, 23, 17)):
        pooled = mean_pool_2x2(da.from_array(data, chunks=chunks)).compute()
        np.testing.assert_allclose(pooled, pool_reference(data), rtol=1e-6, equal_nan=True)


def test_level_count() -> None:
    assert level_count(1000, 700, 256) == 3
    assert level_count(256, 10, 256) == 1
    assert level_count(257, 10, 256) == 2
    with pytest.raises(OptionError):
        level_count(10, 10, 0)


def test_overwrite_errors_and_units(tmp_path: Path) -> None:
    path = make_store(tmp_path / "s.zarr", 20, 30, 2, 16)
    write_label_pyramid(path, pixel_size=(10, 10), unit="metre")
    ome = attrs(path / "labels_pyramid")["ome"]
    assert ome["multiscales"][0]["axes"][0]["unit"] == "meter"
    with pytest.raises(OutputExistsError):
        write_label_pyramid(path)
    again = write_label_pyramid(path, overwrite=True, levels=3)
    assert again.levels == 3 and not (path / "labels_pyramid" / "3").exists()
    with pytest.warns(TilerunWarning, match="furlong"):
        write_label_pyramid(path, name="odd", unit="furlong")
    with pytest.raises(InputError, match="nope"):
        write_label_pyramid(path, source_variable="nope")
    with pytest.raises(InputError, match="dimensions"):
        write_label_pyramid(path, source_variable="logits")
    with pytest.raises(OptionError):
        write_probability_pyramid(path, dtype="int8")
    with pytest.raises(OptionError):
        write_label_pyramid(path, name="../x")
    with pytest.raises(OptionError):
        write_label_pyramid(path, colors=["red"], name="c")
    with pytest.raises(InputError, match=r"zarr\.json"):
        write_label_pyramid(tmp_path / "missing.zarr")
    leftovers = [p.name for p in path.iterdir() if p.suffix in (".partial", ".replaced")]
    assert not leftovers  # the failures above left nothing half-written
    group = zarr.open_group(path, mode="r+", use_consolidated=False)
    group.attrs["tilerun"] = {**dict(group.attrs["tilerun"]), "complete": False}
    with pytest.raises(InputError, match="not finished"):
        write_label_pyramid(path, name="late")


def test_failure_mid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tilerun.sinks.pyramids import ngff

    path = make_store(tmp_path / "s.zarr", 20, 30, 2, 16)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ngff, "_write_levels", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_probability_pyramid(path)
    assert not (path / "probabilities.partial").exists()
    assert not (path / "probabilities").exists()
