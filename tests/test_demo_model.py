"""The bundled demo model does real work, and quicklooks show it.

The scene is drawn with a seed ≥ 1000, which the training script (examples/train_demo_model.py)
never uses, and predicted through the whole CLI path with no ``--model``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from tilerun.cli import main
from tilerun.models.default import BUNDLED
from tilerun.models.package import read_spec
from tilerun.report.png import PNG_SIGNATURE, encode_png
from tilerun.report.quicklook import write_quicklook
from tilerun.sample import CLASSES, COLOURS, PIXEL_SIZE, make_scene

SEED = 1234  # fresh: training uses seeds < 1000
SIZE = 512
MIN_MEAN_IOU = 0.80


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def predicted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tilerun sample`` + ``tilerun predict`` (bundled model); returns the Zarr store."""
    assert BUNDLED.is_file(), f"{BUNDLED} is missing; run examples/train_demo_model.py"
    work = tmp_path_factory.mktemp("demo")
    scene, out = work / "scene.tif", work / "out.zarr"
    code, text = _cli("sample", str(scene), "--size", str(SIZE), "--seed", str(SEED))
    assert code == 0, text
    code, text = _cli("predict", str(scene), "-o", str(out), "--write", "logits,labels",
                      "--quiet")
    assert code == 0, text
    assert "untrained" not in text
    return out


def _iou(pred: np.ndarray, truth: np.ndarray) -> list[float]:
    ious = []
    for k in range(len(CLASSES)):
        p, t = pred == k, truth == k
        ious.append(np.count_nonzero(p & t) / np.count_nonzero(p | t))
    return ious


def test_bundled_model_segments_a_fresh_scene(predicted: Path) -> None:
    group = zarr.open_group(predicted, mode="r")
    labels = np.asarray(group["labels"][:])
    assert group.attrs["tilerun"]["class_names"] == list(CLASSES)
    assert group["labels"].attrs["flag_meanings"] == "water forest field built-up"
    truth = make_scene(SIZE, SIZE, SEED).truth
    ious = _iou(labels, truth)
    report = ", ".join(f"{n} {v:.3f}" for n, v in zip(CLASSES, ious, strict=True))
    print(f"\nbundled model on seed {SEED}: {report}; mean {np.mean(ious):.3f}")
    assert np.mean(ious) >= MIN_MEAN_IOU, report


def test_bundled_package_is_small_and_described() -> None:
    assert BUNDLED.stat().st_size <= 2 * 1024 * 1024
    spec = read_spec(BUNDLED)
    assert spec.class_names == CLASSES
    assert spec.class_colours is not None and len(spec.class_colours) == len(CLASSES)
    assert (spec.pixel_size, spec.pixel_unit) == (PIXEL_SIZE, "m")
    assert spec.bands == 3 and spec.dtype == "uint8"
    assert spec.mean is not None and spec.std is not None


def _decode_png(data: bytes) -> np.ndarray:
    """A minimal decoder for what encode_png writes (8-bit, no interlace, filter 0 rows)."""
    assert data[:8] == PNG_SIGNATURE
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and interlace == 0
    channels = {0: 1, 2: 3, 6: 4}[colour_type]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + width * channels)
    assert not rows[:, 0].any()  # filter type 0 on every row
    return rows[:, 1:].reshape(height, width, channels)


def test_quicklook_colours_the_labels(predicted: Path, tmp_path: Path) -> None:
    png = tmp_path / "look.png"
    code, text = _cli("quicklook", str(predicted), str(png), "--max-size", "200")
    assert code == 0, text
    pixels = _decode_png(png.read_bytes())
    step = 3  # ceil(512 / 200)
    assert pixels.shape == (171, 171, 4)
    labels = np.asarray(zarr.open_group(predicted, mode="r")["labels"][::step, ::step])
    # The bundled model's class colours are the generator's: they come from its spec.
    for k, colour in enumerate(COLOURS):
        ys, xs = np.nonzero(labels == k)
        assert ys.size, f"no {CLASSES[k]} pixels in the quicklook"
        for y, x in list(zip(ys, xs, strict=True))[:: max(1, ys.size // 5)]:
            assert tuple(pixels[y, x]) == (*colour, 255)

    code, text = _cli("quicklook", str(predicted), str(png))
    assert code == 2 and text.strip().count("\n") == 0
    assert "already exists" in text and str(png) in text
    code, text = _cli("quicklook", str(predicted), str(png), "--overwrite", "--max-size", "64")
    assert code == 0, text
    assert _decode_png(png.read_bytes()).shape[:2] == (64, 64)


def test_quicklook_missing_store_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.zarr"
    code, text = _cli("quicklook", str(missing), str(tmp_path / "out.png"))
    assert code == 2
    assert text.strip().count("\n") == 0 and str(missing) in text
    assert not (tmp_path / "out.png").exists()


def test_quicklook_from_logits_with_nodata_and_given_colours(tmp_path: Path) -> None:
    logits = np.zeros((3, 40, 30), np.float32)
    logits[1, :, 10:] = 1.0
    logits[2, 20:, 20:] = 2.0
    logits[:, :5, :5] = np.nan
    group = zarr.open_group(tmp_path / "logits.zarr", mode="w")
    group.create_array("logits", shape=logits.shape, dtype="float32", chunks=(3, 16, 16),
                       fill_value=np.nan)[:] = logits
    look = write_quicklook(tmp_path / "logits.zarr", tmp_path / "l.png",
                           colours=["#ff0000", (0, 255, 0), "#0000ff"])
    assert (look.variable, look.colour_source, look.step) == ("logits", "argument", 1)
    pixels = _decode_png((tmp_path / "l.png").read_bytes())
    assert pixels.shape == (40, 30, 4)
    assert tuple(pixels[0, 0]) == (0, 0, 0, 0)  # nodata: transparent
    assert tuple(pixels[10, 0]) == (255, 0, 0, 255)
    assert tuple(pixels[10, 15]) == (0, 255, 0, 255)
    assert tuple(pixels[30, 25]) == (0, 0, 255, 255)


def test_png_encoder_round_trips() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(_decode_png(encode_png(rgb)), rgb)
