"""The class axis's rules, each stated once: names of label values, colours, probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from tilerun.classes.colours import PALETTE, hex_colour, palette_colour, rgba_colour
from tilerun.classes.names import class_name, label_names, label_values
from tilerun.classes.probabilities import (
    activation_for,
    check_activation,
    probabilities,
    probabilities_into,
    two_class,
)
from tilerun.errors import OptionError


def test_label_names_follow_one_rule() -> None:
    assert label_names(("water", "field"), 2) == ("water", "field")
    assert label_names(("tumour",), 2) == ("not tumour", "tumour")  # a one-class model
    assert label_names(None, 3) == ("class 0", "class 1", "class 2")
    assert label_names(("a", "b"), 3) == ("class 0", "class 1", "class 2")  # not as many
    assert label_values(1) == 2 and label_values(4) == 4
    assert class_name(("a", "b"), 1) == "b" and class_name(("a", "b"), 7) == "class 7"


def test_one_colour_parser_for_every_spelling() -> None:
    assert rgba_colour("#ff8000") == (255, 128, 0, 255)
    assert rgba_colour("ff800080") == (255, 128, 0, 128)
    assert rgba_colour((1, 2, 3)) == (1, 2, 3, 255)
    assert rgba_colour(np.array([1, 2, 3, 4])) == (1, 2, 3, 4)
    assert hex_colour((255, 0, 16)) == "#ff0010"
    for bad in ("#ff80", "#gg0000", (1, 2), (0, 0, 256)):
        with pytest.raises(OptionError, match="--colours"):
            rgba_colour(bad, "--colours")


def test_palette_is_distinct_and_wraps() -> None:
    assert len(set(PALETTE)) == len(PALETTE) == 20
    assert palette_colour(0) == PALETTE[0] and palette_colour(21) == PALETTE[1]
    for colour in PALETTE:
        rgba_colour(colour)


def test_softmax_and_sigmoid_match_their_formulas() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 20, (4, 5, 6)).astype(np.float32)
    e = np.exp(z.astype(np.float64) - z.max(axis=0))
    np.testing.assert_allclose(probabilities(z), e / e.sum(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probabilities(z, "sigmoid"), 1 / (1 + np.exp(-z.astype(np.float64))),
                               rtol=1e-5, atol=1e-7)
    scaled = probabilities_into(z, np.empty_like(z), "softmax", 254.0)
    np.testing.assert_allclose(scaled, 254 * e / e.sum(axis=0), rtol=1e-5, atol=1e-4)
    pair = two_class(z[:1])
    np.testing.assert_allclose(pair.sum(axis=0), 1.0, rtol=1e-6)
    assert np.isnan(probabilities(np.full((3, 1, 1), np.nan, np.float32))).all()  # nodata


def test_activation_rule() -> None:
    assert activation_for(1, "softmax") == "sigmoid"  # a softmax over one logit is always 1
    assert activation_for(4, "sigmoid") == "sigmoid"
    assert activation_for(4, "softmax") == "softmax"
    with pytest.raises(ValueError, match="softmax or sigmoid"):
        check_activation("relu")
