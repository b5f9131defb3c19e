"""Train the demo U-Net bundled with tilerun (``tilerun/models/data/demo.safetensors``).

    python examples/train_demo_model.py [OUT.safetensors] [--minutes M]

The training data are synthetic land-cover scenes from :mod:`tilerun.sample`, whose ground truth
is known: scenes with seeds ``0 … TRAIN_SCENES - 1`` for training and seed :data:`VAL_SEED` for
validation. Seeds ≥ 1000 are reserved for tests and never used here, so the test that checks
the bundled model sees a scene it was not trained on.

Everything is seeded and runs on 2 CPU threads; a run takes a few minutes. Training stops once
the validation mean IoU reaches :data:`TARGET_IOU` (checked every :data:`EVAL_EVERY` steps) or
after :data:`MAX_STEPS` steps, and the best model by validation mean IoU is saved.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tilerun.models import build_unet, save_package
from tilerun.sample import CLASSES, COLOURS, PIXEL_SIZE, make_scene

OUT = Path(__file__).resolve().parents[1] / "tilerun" / "models" / "data" / "demo.safetensors"

TRAIN_SCENES = 8  # seeds 0 … 7
VAL_SEED = 999  # held out; seeds ≥ 1000 belong to the tests
SCENE_SIZE = 512
CROP = 64
BATCH = 16
LEARNING_RATE = 3e-3
MAX_STEPS = 240
EVAL_EVERY = 40
TARGET_IOU = 0.99
ARCHITECTURE = {"in_channels": 3, "classes": len(CLASSES), "base": 8, "depth": 3,
                "batch_norm": True}


def iou_per_class(pred: np.ndarray, truth: np.ndarray, classes: int) -> np.ndarray:
    """Intersection over union of each class (NaN for a class absent from both)."""
    out = np.full(classes, np.nan)
    for k in range(classes):
        p, t = pred == k, truth == k
        union = np.count_nonzero(p | t)
        if union:
            out[k] = np.count_nonzero(p & t) / union
    return out


def class_pixels(truths: np.ndarray) -> list[np.ndarray]:
    """For each class, the ``(scene, row, col)`` of every pixel of that class (for sampling)."""
    return [np.argwhere(truths == k) for k in range(len(CLASSES))]


def random_batch(
    images: np.ndarray, truths: np.ndarray, where: list[np.ndarray], rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``BATCH`` random ``CROP``² crops with random horizontal/vertical flips.

    Class-balanced: each crop is centred (as far as the scene allows) on a pixel of a class
    drawn uniformly, so rare water is seen as often as the rest; without this, an unlucky start
    can leave a network that never predicts water.
    """
    xs, ys = [], []
    present = [k for k, w in enumerate(where) if len(w)]
    for _ in range(BATCH):
        pixels = where[present[int(rng.integers(len(present)))]]
        s, r, c = (int(v) for v in pixels[int(rng.integers(len(pixels)))])
        r = min(max(r - CROP // 2 + int(rng.integers(-CROP // 4, CROP // 4 + 1)), 0),
                SCENE_SIZE - CROP)
        c = min(max(c - CROP // 2 + int(rng.integers(-CROP // 4, CROP // 4 + 1)), 0),
                SCENE_SIZE - CROP)
        x = images[s, :, r : r + CROP, c : c + CROP]
        y = truths[s, r : r + CROP, c : c + CROP]
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, ::-1]
        if rng.random() < 0.5:
            x, y = x[:, ::-1, :], y[::-1, :]
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(y))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)).long()


@torch.no_grad()
def validate(model: nn.Module, image: torch.Tensor, truth: np.ndarray) -> np.ndarray:
    model.eval()
    pred = model(image[None])[0].argmax(0).numpy()
    model.train()
    return iou_per_class(pred, truth, len(CLASSES))


@dataclass(frozen=True)
class Data:
    """Normalised training scenes, their truths and where each class is, and the held-out
    validation scene; ``mean``/``std`` are rounded, so that training uses exactly the values
    the spec stores."""

    images: np.ndarray
    truths: np.ndarray
    where: list[np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    val_image: torch.Tensor
    val_truth: np.ndarray


def load_data() -> Data:
    scenes = [make_scene(SCENE_SIZE, SCENE_SIZE, seed) for seed in range(TRAIN_SCENES)]
    raw = np.stack([s.image for s in scenes]).astype(np.float32)
    truths = np.stack([s.truth for s in scenes])
    mean = raw.mean(axis=(0, 2, 3), dtype=np.float64).round(3).astype(np.float32)
    std = raw.std(axis=(0, 2, 3), dtype=np.float64).round(3).astype(np.float32)
    images = (raw - mean[None, :, None, None]) / std[None, :, None, None]
    val = make_scene(SCENE_SIZE, SCENE_SIZE, VAL_SEED)
    val_image = torch.from_numpy(
        (val.image.astype(np.float32) - mean[:, None, None]) / std[:, None, None]
    )
    share = np.bincount(truths.ravel(), minlength=len(CLASSES)) / truths.size
    print("training pixels per class:",
          ", ".join(f"{n} {f:.1%}" for n, f in zip(CLASSES, share, strict=True)))
    print(f"mean {[round(float(v), 3) for v in mean]}  std {[round(float(v), 3) for v in std]}")
    return Data(images, truths, class_pixels(truths), mean, std, val_image, val.truth)


def train(model: nn.Module, data: Data, rng: np.random.Generator, start: float,
          minutes_limit: float) -> tuple[dict[str, torch.Tensor], int]:
    """Train until the validation mIoU reaches :data:`TARGET_IOU`, the steps run out or the
    time does; the best weights seen and their step."""
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=LEARNING_RATE, total_steps=MAX_STEPS, pct_start=0.1
    )
    loss_fn = nn.CrossEntropyLoss()
    best_iou, best_state, best_step = -1.0, dict(model.state_dict()), 0
    running = 0.0
    model.train()
    for step in range(1, MAX_STEPS + 1):
        x, y = random_batch(data.images, data.truths, data.where, rng)
        loss = loss_fn(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        running += loss.item()
        if step % EVAL_EVERY and step != MAX_STEPS:
            continue
        ious = validate(model, data.val_image, data.val_truth)
        miou = float(np.nanmean(ious))
        minutes = (time.perf_counter() - start) / 60
        print(f"step {step:5d}  loss {running / EVAL_EVERY:.4f}  val mIoU {miou:.4f} "
              f"({' '.join(f'{v:.3f}' for v in ious)})  {minutes:.1f} min", flush=True)
        running = 0.0
        if miou > best_iou:
            best_iou, best_step = miou, step
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if miou >= TARGET_IOU or minutes > minutes_limit:
            break
    return best_state, best_step


def save(model: nn.Module, out: Path, data: Data) -> None:
    """The demo package: weights and the spec the CLI and the tests rely on."""
    out.parent.mkdir(parents=True, exist_ok=True)
    save_package(
        model.eval(),
        out,
        mean=tuple(round(float(v), 3) for v in data.mean),
        std=tuple(round(float(v), 3) for v in data.std),
        bands=3,
        band_names=("red", "green", "blue"),
        dtype="uint8",
        class_names=CLASSES,
        class_colours=tuple("#{:02x}{:02x}{:02x}".format(*c) for c in COLOURS),
        activation="softmax",
        tile=256,
        overlap=0.25,
        pixel_size=PIXEL_SIZE,
        pixel_unit="m",
        name="demo",
    )
    out.chmod(0o644)  # safetensors writes 0600; an installed package must be world-readable


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=OUT)
    parser.add_argument("--minutes", type=float, default=9.0,
                        help="Stop training after this many minutes (wall clock).")
    args = parser.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    data = load_data()
    model = build_unet("unet", **ARCHITECTURE)
    params = sum(p.numel() for p in model.parameters())
    print(f"U-Net {ARCHITECTURE}: {params:,} parameters")
    best_state, best_step = train(model, data, rng, start, args.minutes)
    model.load_state_dict(best_state)
    ious = validate(model, data.val_image, data.val_truth)
    print(f"best: step {best_step}, validation (seed {VAL_SEED}) IoU per class:")
    for name, value in zip(CLASSES, ious, strict=True):
        print(f"  {name:10s} {value:.4f}")
    print(f"  {'mean':10s} {np.nanmean(ious):.4f}")
    save(model, args.out, data)
    size = args.out.stat().st_size
    minutes = (time.perf_counter() - start) / 60
    print(f"wrote {args.out} ({size / 1e6:.2f} MB) in {minutes:.1f} min")


if __name__ == "__main__":
    main()
