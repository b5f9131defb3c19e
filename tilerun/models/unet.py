"""A configurable U-Net (Ronneberger et al., 2015) with 'same' padding.

Each level halves the resolution with 2×2 max pooling, so inputs must be multiples of
``2**depth`` (:attr:`UNet.downsampling`); the engine picks tile sizes accordingly. Channel widths
double per level: ``base · 2**level`` for ``level = 0 … depth``. The original paper's
configuration (:data:`PRESETS` ``"unet-original"``: base 64, depth 4, so 64→1024 channels,
transposed-convolution upsampling, no batch norm) has 31.0 M parameters; ``"unet-original-valid"``
also uses the paper's valid (unpadded) convolutions, so its output is the centre of its input,
smaller by :attr:`UNet.border` on each side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from tilerun.errors import ModelError

UPSAMPLING = ("transpose", "bilinear")
PADDINGS = ("same", "valid")


@dataclass(frozen=True)
class UNetConfig:
    """Everything that defines a U-Net's architecture (its weights aside)."""

    in_channels: int = 3
    classes: int = 2
    base: int = 64
    depth: int = 4
    batch_norm: bool = True
    upsampling: str = "transpose"
    padding: str = "same"

    def __post_init__(self) -> None:
        if self.padding not in PADDINGS:
            raise ModelError("unet", f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.upsampling not in UPSAMPLING:
            raise ModelError(
                "unet", f"upsampling must be one of {UPSAMPLING}, got {self.upsampling!r}"
            )
        if min(self.in_channels, self.classes, self.base, self.depth) < 1:
            raise ModelError("unet", f"channels, classes, base and depth must be ≥ 1: {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    "unet-original": {"base": 64, "depth": 4, "batch_norm": False, "upsampling": "transpose"},
    "unet-original-valid": {
        "base": 64,
        "depth": 4,
        "batch_norm": False,
        "upsampling": "transpose",
        "padding": "valid",
    },
    "unet-small": {"base": 16, "depth": 4, "batch_norm": True, "upsampling": "transpose"},
}


def _double_conv(cin: int, cout: int, batch_norm: bool, pad: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c in (cin, cout):
        layers.append(nn.Conv2d(c, cout, 3, padding=pad, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Up(nn.Module):
    """Upsample ×2, concatenate the skip connection, double conv."""

    def __init__(self, cin: int, cout: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.up: nn.Module
        if cfg.upsampling == "transpose":
            self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(cin, cout, 1),
            )
        self.conv = _double_conv(2 * cout, cout, cfg.batch_norm, _pad(cfg))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.conv(torch.cat([_centre_crop(skip, x.shape[-2:]), x], dim=1))


def _pad(cfg: UNetConfig) -> int:
    return 1 if cfg.padding == "same" else 0


def _centre_crop(x: torch.Tensor, size: Any) -> torch.Tensor:
    """The centre ``size`` of ``x`` (valid convolutions shrink the decoder path)."""
    dy, dx = (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2
    if dy == 0 and dx == 0:
        return x
    return x[..., dy : dy + size[0], dx : dx + size[1]]


class UNet(nn.Module):
    """Encoder–decoder with skip connections; logits out, ``(N, classes, H, W)``."""

    def __init__(self, config: UNetConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config if config is not None else UNetConfig(**kwargs)
        cfg = self.config
        widths = [cfg.base * 2**level for level in range(cfg.depth + 1)]
        pad = _pad(cfg)
        self.encoders = nn.ModuleList(
            [_double_conv(cfg.in_channels, widths[0], cfg.batch_norm, pad)]
        )
        self.encoders.extend(
            _double_conv(widths[i], widths[i + 1], cfg.batch_norm, pad) for i in range(cfg.depth)
        )
        self.decoders = nn.ModuleList(
            _Up(widths[i + 1], widths[i], cfg) for i in reversed(range(cfg.depth))
        )
        self.head = nn.Conv2d(widths[0], cfg.classes, 1)
        self.pool = nn.MaxPool2d(2)

    @property
    def downsampling(self) -> int:
        """Input sizes must be multiples of this: ``2**depth``."""
        return int(2**self.config.depth)

    @property
    def border(self) -> int:
        """Pixels lost per side with valid convolutions: ``B = 6 · 2**depth − 4``, else 0.

        Each 3×3 valid convolution at level ``i`` trims ``2**i`` input pixels per side; there
        are two per level on the way down (levels ``0…d−1``), two at the bottom (level ``d``)
        and two per level on the way up: ``Σ 2·2·2**i + 2·2**d = 6·2**d − 4`` (92 for depth 4,
        so a 572² tile gives the paper's 388² output).
        """
        return 6 * 2**self.config.depth - 4 if self.config.padding == "valid" else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for decoder in self.decoders:
            x = decoder(x, skips.pop())
        return self.head(x)


def build_unet(name: str = "unet", **arguments: Any) -> UNet:
    """A U-Net by preset name (``unet-original``, ``unet-small``) or ``unet`` with arguments."""
    if name == "unet":
        return UNet(UNetConfig(**arguments))
    if name not in PRESETS:
        raise ModelError(name, f"unknown architecture; choose from {['unet', *PRESETS]}")
    return UNet(UNetConfig(**{**PRESETS[name], **arguments}))
