"""Comparing label outputs: the confusion matrix streams chunk by chunk and leaves nodata out;
agreement and IoU follow their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import zarr

from tilerun.compare import agreement_and_iou, label_confusion
from tilerun.errors import InputError


def test_agreement_and_iou_formulas():
    perfect = np.diag([5, 0, 3])
    agreement, iou = agreement_and_iou(perfect, "a")
    assert agreement == 1.0 and iou[0] == iou[2] == 1.0 and math.isnan(iou[1])
    agreement, iou = agreement_and_iou(np.array([[6, 2], [0, 2]]), "a")
    assert agreement == 0.8 and iou.tolist() == [6 / 8, 2 / 4]
    with pytest.raises(InputError, match="no pixels valid in both"):
        agreement_and_iou(np.zeros((2, 2), np.int64), "scene.tif")


def test_label_confusion_leaves_out_nodata_in_either(tmp_path):
    a = np.array([[0, 1, 255], [2, 2, 1]], np.uint8)
    b = np.array([[0, 2, 0], [2, 255, 1]], np.uint8)
    for name, labels in (("a", a), ("b", b)):
        group = zarr.open_group(str(tmp_path / f"{name}.zarr"), mode="w")
        array = group.create_array("labels", shape=labels.shape, dtype="uint8", chunks=(1, 2))
        array[:] = labels
        array.attrs["flag_values"] = [0, 1, 2]
    matrix = label_confusion(tmp_path / "a.zarr", tmp_path / "b.zarr")
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
