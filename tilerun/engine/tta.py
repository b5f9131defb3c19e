"""Test-time augmentation: the dihedral views of a square tile and their inverses.

A view ``g`` maps a tile to ``g(x)``; its prediction is mapped back with ``g⁻¹`` before
averaging, ``y = (1/|G|) Σ_g g⁻¹(f(g(x)))``, in float32. ``flips`` is ``{id, flip-x, flip-y,
flip-both}``; ``d4`` adds the rotations: ``{rot90ᵏ ∘ flipˢ : k = 0…3, s = 0, 1}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

H, W = 2, 3  # spatial dims of NCHW tensors


@dataclass(frozen=True)
class View:
    """``forward(x) = rot90(flip(x), k)``; ``inverse(y) = flip(rot90(y, -k))``."""

    k: int = 0
    flip_x: bool = False
    flip_y: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._flip(x)
        return torch.rot90(x, self.k, dims=(H, W)) if self.k else x

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y = torch.rot90(y, -self.k, dims=(H, W)) if self.k else y
        return self._flip(y)

    def _flip(self, x: torch.Tensor) -> torch.Tensor:
        dims = [d for d, on in ((H, self.flip_y), (W, self.flip_x)) if on]
        return torch.flip(x, dims=dims) if dims else x


VIEWS: dict[str, tuple[View, ...]] = {
    "none": (View(),),
    "flips": (View(), View(flip_x=True), View(flip_y=True), View(flip_x=True, flip_y=True)),
    "d4": tuple(View(k, flip_x=s) for s in (False, True) for k in range(4)),
}


def averaged(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: str
) -> torch.Tensor:
    """The float32 mean of the model's un-transformed predictions over the mode's views."""
    views = VIEWS[mode]
    if len(views) == 1:
        return model(x).float()
    # Out of place: a model may return (a view of) its input, which must not be modified.
    total = torch.zeros((), dtype=torch.float32, device=x.device)
    for view in views:
        total = total + view.inverse(model(view.forward(x)).float())
    return total / len(views)
