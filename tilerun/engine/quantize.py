"""INT8 quantisation of a model, checked through the engine against the fp32 model.

INT8 weights are ~4× smaller and INT8 convolutions run faster on CPUs with VNNI/AMX, but
rounding activations to 256 levels can move a pixel's arg-max to another class. So a
quantised model is only written after it has been compared with the fp32 model on a scene:

1. The fp32 model is exported to ONNX (:func:`tilerun.models.export.export_model`), unless it
   already is an ``.onnx`` file.
2. ``static`` (default): activation ranges are calibrated on up to ``calibration_tiles`` tiles
   of the scene, normalised as the engine does, and the graph gets QuantizeLinear/
   DequantizeLinear pairs (QDQ: INT8 per-channel weights, UINT8 per-tensor activations).
   ``dynamic``: only weights are stored as INT8; activations are quantised at run time with
   scales computed per call (no calibration data needed).
3. The source's ``tilerun.spec`` and ``tilerun.downsampling`` metadata are copied into the INT8
   model, which also gets ``tilerun.quantization``: the :class:`QuantizeReport` as JSON.
4. Both models run through the engine on the whole scene (``labels`` output only) and the
   label maps are compared chunk by chunk (:func:`tilerun.report.compare.compare_outputs`),
   pixels that are nodata (255) in either left out.
   With ``C[i, j]`` the count of pixels labelled ``i`` by fp32 and ``j`` by INT8:
   ``agreement = Σ C[i, i] / Σ C``, ``IoU(c) = C[c, c] / (Σ_j C[c, j] + Σ_i C[i, c] − C[c, c])``
   (NaN for a class neither model predicts).
5. Below ``min_agreement`` nothing is written (unless ``force``); else the file is moved into
   place atomically (``os.replace`` from a temporary file in the output's folder).

The agreement is measured with this machine's INT8 kernels. x86 CPUs without VNNI (AVX2
only) can saturate UINT8×INT8 products, so a model deployed on one may agree less: check it
there (``tilerun model quantize`` again, or compare ``predict`` outputs).

The ONNX Runtime mechanics (settings, metadata, the report, the atomic write) are in
:mod:`tilerun.models.quantize`; this workflow runs the engine, so it lives above it.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

from torch import nn

from tilerun.engine.checks import check_input
from tilerun.engine.execute import run
from tilerun.engine.options import PredictOptions
from tilerun.models.calibration import CalibrationTiles, calibration_tile, calibration_windows
from tilerun.models.handle import ModelHandle, as_model
from tilerun.models.quantize import (
    QuantizeReport,
    check_options,
    check_output,
    copy_metadata,
    fp32_onnx,
    quantize_dynamic,
    quantize_static,
    refuse_below,
    write_int8,
)
from tilerun.report.compare import OutputComparison, compare_outputs
from tilerun.sources import Source, open_source

__all__ = ["QuantizeReport", "quantize_model"]


def quantize_model(
    model: str | Path | nn.Module | ModelHandle,
    out: str | Path,
    calibrate: str | Path | Source,
    *,
    method: str = "static",
    calibration_tiles: int = 32,
    tile: int | None = None,
    min_agreement: float = 0.98,
    force: bool = False,
    overwrite: bool = False,
    allow_pickle: bool = False,
) -> QuantizeReport:
    """Write an INT8 ONNX version of ``model`` to ``out``, checked on the scene ``calibrate``.

    ``model``: a model file (an ``.onnx`` one is used as is) or module, as for
    :func:`~tilerun.models.export.export_model`; ``calibrate``: a path or
    :class:`~tilerun.sources.Source`. ``tile``: the tile edge for export, calibration and the
    comparison runs (default: the spec's, else 256, shrunk to fit the scene). Raises
    :class:`~tilerun.errors.ModelError` (and writes nothing) when the label agreement is below
    ``min_agreement`` and ``force`` is False.
    """
    start = time.perf_counter()
    out = Path(out)
    check_options(method, calibration_tiles, min_agreement, tile)
    check_output(out, overwrite)
    source = open_source(calibrate)
    with tempfile.TemporaryDirectory(prefix=".tilerun-quantize-", dir=out.parent) as tmp:
        # In the output's folder: the comparison stores grow with the scene (the system's temp
        # may be small), and the final os.replace must not cross file systems.
        work = Path(tmp)
        fp32 = fp32_onnx(model, work, tile, allow_pickle)
        handle = as_model(fp32)
        edge = calibration_tile(handle, source, tile)
        int8 = work / "int8.onnx"
        tiles = 0
        if method == "static":
            check_input(source, handle, float("inf"))
            windows = calibration_windows(source.shape, edge, calibration_tiles)
            quantize_static(fp32, int8, CalibrationTiles(source, handle, windows))
            tiles = len(windows)
        else:
            quantize_dynamic(fp32, int8)
        copy_metadata(fp32, int8)
        compared = _compare(source, fp32, int8, work, edge)
        report = QuantizeReport(
            method=method,
            agreement=compared.agreement,
            iou={name: math.nan if value is None else value
                 for name, value in zip(compared.class_names, compared.iou, strict=True)},
            fp32_bytes=fp32.stat().st_size,
            int8_bytes=int8.stat().st_size,
            seconds=time.perf_counter() - start,
            pixels=compared.pixels,
            tiles=tiles,
        )
        refuse_below(report, min_agreement, force, out)
        return write_int8(int8, out, report, overwrite)


def _compare(source: Source, fp32: Path, int8: Path, work: Path, edge: int) -> OutputComparison:
    """Run both models through the engine into Zarr stores and compare their labels."""
    # Both on ONNX Runtime, which runs the INT8 graph as quantized (as users will run it).
    options = PredictOptions(output=("labels",), tile=edge, pixel_size_tolerance=float("inf"),
                             backend="onnxruntime")
    stores = []
    for path in (fp32, int8):
        store = work / f"{path.stem}.zarr"
        run(source, path, store, options)
        stores.append(store)
    return compare_outputs(stores[0], stores[1], subject="--calibrate")
