"""``tilerun compare``: per-class IoU, label agreement and the largest logit difference of two
outputs, streamed chunk by chunk; outputs of another shape or grid are refused."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from tilerun.cli import main
from tilerun.report.compare import compare_outputs


def _store(path, logits=None, labels=None, transform="0 10 0 0 0 -10", chunk=(8, 8)):
    group = zarr.open_group(str(path), mode="w")
    if logits is not None:
        array = group.create_array("logits", shape=logits.shape, dtype="float32",
                                   chunks=(logits.shape[0], *chunk), fill_value=np.nan)
        array[:] = logits
    if labels is not None:
        array = group.create_array("labels", shape=labels.shape, dtype="uint8", chunks=chunk,
                                   fill_value=255)
        array[:] = labels
    ref = group.create_array("spatial_ref", shape=(), dtype="int64")
    ref.attrs["GeoTransform"] = transform
    ref.attrs["crs_wkt"] = "EPSG:32633"
    group.attrs["tilerun"] = {"class_names": ["a", "b", "c"], "complete": True}
    return path


@pytest.fixture
def logits():
    z = np.random.default_rng(0).normal(size=(3, 20, 30)).astype(np.float32)
    z[:, :2, :3] = np.nan  # nodata
    return z


def _labels(z):
    labels = np.nan_to_num(z, nan=-np.inf).argmax(axis=0).astype(np.uint8)
    labels[np.isnan(z).any(axis=0)] = 255
    return labels


def test_identical_outputs_agree_fully(tmp_path, logits):
    a = _store(tmp_path / "a.zarr", logits, _labels(logits))
    b = _store(tmp_path / "b.zarr", logits, _labels(logits), chunk=(7, 11))  # other chunks
    result = compare_outputs(a, b)
    assert result.agreement == 1.0 and result.iou == (1.0, 1.0, 1.0)
    assert result.max_logit_difference == 0.0 and result.nodata_mismatch == 0
    assert result.pixels == 20 * 30 - 6 and result.class_names == ("a", "b", "c")


def test_iou_and_agreement_on_constructed_labels(tmp_path, logits):
    first = _labels(logits)
    second = first.copy()
    second[5:10, 5:15] = 0  # 50 pixels relabelled as class 0
    shifted = logits + 0.25
    a = _store(tmp_path / "a.zarr", logits, first)
    b = _store(tmp_path / "b.zarr", shifted, second)
    result = compare_outputs(a, b)
    valid = first != 255
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (first[valid], second[valid]), 1)
    hits = np.diag(confusion)
    iou = hits / (confusion.sum(0) + confusion.sum(1) - hits)
    assert result.agreement == pytest.approx(hits.sum() / valid.sum())
    assert result.iou == pytest.approx(tuple(iou))
    assert result.mean_iou == pytest.approx(iou.mean())
    assert result.max_logit_difference == pytest.approx(0.25)


def test_labels_from_logits_when_one_output_has_no_labels(tmp_path, logits):
    a = _store(tmp_path / "a.zarr", logits, _labels(logits))
    b = _store(tmp_path / "b.zarr", logits)
    assert compare_outputs(a, b).agreement == 1.0
    only_labels = _store(tmp_path / "c.zarr", labels=_labels(logits))
    assert compare_outputs(a, only_labels).max_logit_difference is None


def test_cli_refuses_other_shapes_and_grids(tmp_path, logits):
    a = _store(tmp_path / "a.zarr", logits, _labels(logits))
    small = _store(tmp_path / "small.zarr", logits[:, :10], _labels(logits[:, :10]))
    result = CliRunner().invoke(main, ["compare", str(a), str(small)])
    assert result.exit_code == 2
    assert result.output == (f"error: {small}: is 10×30 pixels but {a} is 20×30: outputs of "
                             "different shape cannot be compared\n")
    moved = _store(tmp_path / "moved.zarr", logits, _labels(logits), "100 10 0 0 0 -10")
    result = CliRunner().invoke(main, ["compare", str(a), str(moved)])
    assert result.exit_code == 2 and "is on another grid" in result.output
    assert len(result.output.splitlines()) == 1


def test_cli_prints_text_and_json(tmp_path, logits):
    a = _store(tmp_path / "a.zarr", logits, _labels(logits))
    result = CliRunner().invoke(main, ["compare", str(a), str(a)])
    assert result.exit_code == 0, result.output
    assert "label agreement 100.000 %" in result.output and "IoU a  1.0000" in result.output
    result = CliRunner().invoke(main, ["compare", str(a), str(a), "--json"])
    data = json.loads(result.output)
    assert data["agreement"] == 1.0 and data["max_logit_difference"] == 0.0
    assert data["iou"] == [1.0, 1.0, 1.0] and not math.isnan(data["mean_iou"])
