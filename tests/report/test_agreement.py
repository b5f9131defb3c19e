"""Comparing label outputs: the confusion counts leave nodata out; agreement and IoU follow
their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tilerun.errors import InputError
from tilerun.report.compare import agreement_and_iou, pair_counts
from tilerun.sinks.layout.codes import LABEL_FILL


def test_agreement_and_iou_formulas():
    perfect = np.diag([5, 0, 3])
    agreement, iou = agreement_and_iou(perfect, "a")
    assert agreement == 1.0 and iou[0] == iou[2] == 1.0 and math.isnan(iou[1])
    agreement, iou = agreement_and_iou(np.array([[6, 2], [0, 2]]), "a")
    assert agreement == 0.8 and iou.tolist() == [6 / 8, 2 / 4]
    with pytest.raises(InputError, match="no pixels valid in both"):
        agreement_and_iou(np.zeros((2, 2), np.int64), "scene.tif")


def test_pair_counts_leave_out_nodata_in_either():
    a = np.array([[0, 1, LABEL_FILL], [2, 2, 1]], np.uint8)
    b = np.array([[0, 2, 0], [2, LABEL_FILL, 1]], np.uint8)
    bins = LABEL_FILL
    matrix = pair_counts(a, b, bins).reshape(bins, bins)[:3, :3]
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert pair_counts(a, b, bins).sum() == 4
