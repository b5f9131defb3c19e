"""Class probabilities from logits: the one softmax/sigmoid rule of the engine's uint8 codes,
the viewer pyramid's float32 level 0 and anything else that turns logits into probabilities.

``softmax``: ``p = exp(z - max) / Σ exp(z - max)`` over classes (axis 0); subtracting the
per-pixel max keeps every ``exp`` in (0, 1], so nothing overflows and the sum is at least 1.
``sigmoid``: ``p = 1 / (1 + exp(-z))`` per class (``exp`` overflowing to inf gives ``p = 0``,
as it should). NaN logits (nodata) give NaN.
"""

from __future__ import annotations

import numpy as np

#: the activations a model's spec may name
ACTIVATIONS = ("softmax", "sigmoid")


def check_activation(activation: str) -> None:
    """Refuse an activation other than :data:`ACTIVATIONS` (a programming error, not input)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be softmax or sigmoid, got {activation!r}")


def probabilities_into(z: np.ndarray, out: np.ndarray, activation: str, scale: float = 1.0
                       ) -> np.ndarray:
    """``scale · p`` of the logits ``z`` ``(C, …)`` written into the float32 ``out`` (same
    shape; may not be ``z``): vectorised passes, in place, so a caller can run them block by
    block on a scratch buffer that stays in cache. ``scale`` is fused into the last pass (the
    engine's uint8 codes are ``round(p · 254)``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if activation == "softmax":
            np.subtract(z, z.max(axis=0), out=out)
            np.exp(out, out=out)
            factor = out.sum(axis=0)
            np.divide(scale, factor, out=factor)
            out *= factor
        else:
            check_activation(activation)
            np.negative(z, out=out)
            np.exp(out, out=out)
            out += 1.0
            np.divide(scale, out, out=out)
    return out


def probabilities(z: np.ndarray, activation: str = "softmax") -> np.ndarray:
    """float32 probabilities of the logits ``z`` ``(C, …)``."""
    z = np.asarray(z, np.float32)
    return probabilities_into(z, np.empty(z.shape, np.float32), activation)


def two_class(z: np.ndarray) -> np.ndarray:
    """A one-class model's logits ``(1, …)`` as the probabilities of its two label values,
    ``1 - σ(z)`` and ``σ(z)`` (label 0 is "not X", label 1 is "X")."""
    p = probabilities(z, "sigmoid")[0]
    return np.stack([1.0 - p, p]).astype(np.float32)


def activation_for(classes: int, activation: str) -> str:
    """The activation that makes a model's probabilities: ``sigmoid`` per class for a sigmoid
    model or a one-class model (a softmax over one logit would always be 1), else
    ``softmax``."""
    return "sigmoid" if classes == 1 or activation == "sigmoid" else "softmax"
