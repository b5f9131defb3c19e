"""An attention-gated U-Net (Oktay et al., 2018, "Attention U-Net: Learning Where to Look").

The encoder, bottleneck, up-sampling, double convolutions and head are tilerun's
:class:`~tilerun.models.unet.UNet` blocks, with the same parameter names, so a U-Net's weights
load into an :class:`AttentionUNet` with only the gates missing. What differs: before a skip
connection is concatenated in the decoder, it passes an additive attention gate driven by the
coarser decoder features ``g`` (the gating signal):

``q = ReLU(W_x ∗ x + W_g ∗ g + b_g)``, ``α = σ(ψ ∗ q + b_ψ)``, ``x̂ = α · x``

where ``W_x`` is a 2×2 stride-2 convolution (it brings the skip ``x`` down to the gating grid),
``W_g`` and ``ψ`` are 1×1 convolutions, and the coefficients ``α ∈ (0, 1)`` (one per pixel) are
resampled bilinearly to the skip's resolution. ``F_int``, the gate's intermediate width, is half
the skip's channels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from tilerun.models.package import register_architecture
from tilerun.models.unet import UNet, UNetConfig, _centre_crop, _Up

ARCHITECTURE = "attention-unet"


class AttentionGate(nn.Module):
    """Additive attention gate: scales a skip connection by coefficients in ``(0, 1)``.

    ``skip`` is ``(N, F_l, 2h, 2w)``, ``gate`` is ``(N, F_g, h, w)``; returns ``α · skip``.
    ``psi`` ends in the sigmoid, so a forward hook on it sees ``α`` at the gating resolution.
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.theta_x = nn.Conv2d(skip_channels, inter_channels, 2, stride=2, bias=False)
        self.phi_g = nn.Conv2d(gate_channels, inter_channels, 1)
        self.psi = nn.Sequential(nn.Conv2d(inter_channels, 1, 1), nn.Sigmoid())

    def coefficients(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """``α``, ``(N, 1, 2h, 2w)``, at the skip connection's resolution."""
        q = F.relu(self.theta_x(skip) + self.phi_g(gate))
        alpha = self.psi(q)
        return F.interpolate(alpha, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.coefficients(skip, gate)


class _GatedUp(_Up):
    """:class:`~tilerun.models.unet._Up` whose skip connection passes an attention gate."""

    def __init__(self, cin: int, cout: int, cfg: UNetConfig) -> None:
        super().__init__(cin, cout, cfg)
        self.gate = AttentionGate(cout, cin, max(1, cout // 2))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        # Valid convolutions leave the skip larger than the decoder path: crop it first, so
        # it is exactly twice the gating signal's size.
        skip = self.gate(_centre_crop(skip, up.shape[-2:]), x)
        return self.conv(torch.cat([skip, up], dim=1))


class AttentionUNet(UNet):
    """A :class:`~tilerun.models.unet.UNet` with attention gates on its skip connections.

    Logits out, ``(N, classes, H, W)``; inputs must be multiples of :attr:`downsampling`
    (``2**depth``), and :attr:`border` is the U-Net's for ``padding="valid"``.
    """

    architecture = ARCHITECTURE

    def __init__(self, config: UNetConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        widths = [cfg.base * 2**level for level in range(cfg.depth + 1)]
        self.decoders = nn.ModuleList(
            _GatedUp(widths[i + 1], widths[i], cfg) for i in reversed(range(cfg.depth))
        )

    def gates(self) -> list[AttentionGate]:
        """The gates, deepest first (the order the decoder applies them)."""
        return [decoder.gate for decoder in self.decoders if isinstance(decoder, _GatedUp)]


def build_attention_unet(**arguments: Any) -> AttentionUNet:
    """An :class:`AttentionUNet` from :class:`~tilerun.models.unet.UNetConfig` arguments."""
    return AttentionUNet(UNetConfig(**arguments))


register_architecture(ARCHITECTURE, build_attention_unet)
