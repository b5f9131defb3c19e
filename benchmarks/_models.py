"""The benchmarks' models: the seeded U-Net every speed figure uses, and two stand-ins for
measuring the engine without a real model's cost (a 1×1 convolution, and a "device" that
only sleeps)."""

from __future__ import annotations

import time

import torch

from tilerun.models import build_unet


def bench_unet(base: int = 16, depth: int = 4, bands: int = 3, classes: int = 4,
               seed: int = 0) -> torch.nn.Module:
    """The benchmarks' U-Net (base 16, depth 4, 3 → 4 classes, ``torch.manual_seed(0)``), in
    eval mode: the same weights in every script, so their figures compare."""
    torch.manual_seed(seed)
    return build_unet("unet", in_channels=bands, classes=classes, base=base, depth=depth).eval()


class NullModel(torch.nn.Module):
    """A 1×1 convolution, 3 → 4 classes (channels-last inside): the engine's own cost with
    next to no model cost."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.contiguous(memory_format=torch.channels_last))
        return y.contiguous()


class SleepModel(torch.nn.Module):
    """A device of ``rate`` Mpx/s of tiles: sleeps (releasing the GIL), uses no CPU."""

    def __init__(self, rate_mpx: float, classes: int = 4) -> None:
        super().__init__()
        self.rate = rate_mpx * 1e6
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        n, _, h, w = x.shape
        out = x[:, :1].expand(n, self.classes, h, w)
        time.sleep(max(0.0, n * h * w / self.rate - (time.perf_counter() - start)))
        return out
