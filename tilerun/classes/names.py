"""The names of label values: one rule for stores, exports, comparisons and reports.

A model's spec names its classes; its labels hold one value per class, except a one-class
(binary) model, whose labels 0 and 1 are ``not X`` and ``X``. A value without a name is
``class k``.
"""

from __future__ import annotations

from collections.abc import Sequence


def label_names(names: Sequence[str] | None, values: int) -> tuple[str, ...]:
    """One name for each of ``values`` label values, from the model's class ``names``: those
    names when they are as many, ``not X`` and ``X`` for a one-class model's two values, else
    ``class 0`` …"""
    given = tuple(str(n) for n in names or ())
    if len(given) == values:
        return given
    if len(given) == 1 and values == 2:
        return (f"not {given[0]}", given[0])
    return tuple(f"class {k}" for k in range(values))


def class_name(names: Sequence[str], value: int) -> str:
    """The name of label ``value``: ``names[value]``, else ``class value``."""
    return names[value] if 0 <= value < len(names) else f"class {value}"


def label_values(classes: int) -> int:
    """How many label values a model with ``classes`` outputs writes: one per class, and two
    (``not X``, ``X``) for a one-class model."""
    return max(classes, 2)
