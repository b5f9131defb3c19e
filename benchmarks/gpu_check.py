#!/usr/bin/env python
"""GPU check for tilerun: is the GPU output right, and how much of the model's speed is kept?

Usage (from the repo root, on a machine with one NVIDIA GPU)::

    bash benchmarks/gpu_check.sh                     # the prepared command (< 8 minutes)
    python benchmarks/gpu_check.py                   # the same report, without the install step
    python benchmarks/gpu_check.py --quick           # smoke test: 4096² scene, fewer batches
    python benchmarks/gpu_check.py --quick --device cpu --scene-size 512 --tile 128 --overlap 16
    python benchmarks/gpu_check.py --backends torch  # backend rows: torch only (no compile)

The report (markdown) goes to stdout, section by section as each finishes; progress goes to
stderr. Exit status: 0 when every step ran (whether or not a goal was met: the report says
pass/miss), 1 when a step crashed, 2 when CUDA is not available (and ``--device`` is cuda),
124 when interrupted (SIGTERM/SIGINT, e.g. by ``timeout``) after printing what was measured.

What each number means:

* **Correctness.** One seeded 1024² scene (``tilerun.sample.write_scene``), one U-Net (base 16,
  depth 4, 3→4 classes, ``torch.manual_seed(0)``), the same options (tile, overlap, chunk,
  batch size) on every run; only device and precision change. ``max |Δ|`` is the largest
  absolute difference of the logits from the CPU fp32 run's, ``max |cpu|`` the largest absolute
  CPU logit, ``rel. error`` = ``max |Δ| ÷ max |cpu|``. Goals: ≤ 1e-4 for fp32 on the GPU and
  ≤ 3e-2 for bf16 on the GPU. PyTorch runs fp32 convolutions as TF32 on the GPU by default
  (``torch.backends.cudnn.allow_tf32``); when it is on, an extra row with TF32 off shows what
  the engine gives in true fp32.
* **Throughput**, per model (U-Net base 16 and base 64, depth 4, 3→4 classes), on a seeded
  16384² 3-band uint8 GeoTIFF (tiled 512², deflate; cached in ``--workdir``), with
  ``PredictOptions(tile=512, overlap=64, precision="bf16", batch_size=16, chunk=2048,
  threads=8, tissue="none")``. A warm-up run of the same model and options on a 2048² scene
  comes first, so CUDA initialisation and kernel loading are not timed.

  - ``tiles``: ``summary.tiles_run`` of the timed run.
  - ``model-only s``: the time the model alone needs for that many tiles: random
    ``(B, 3, 512, 512)`` float32 batches already on the GPU, under ``torch.inference_mode`` and
    ``torch.autocast(bfloat16)``, after warm-up batches, ``torch.cuda.synchronize()`` before
    the clock stops. ``timed`` batches are run (at least 50, ``--min-batches``; every batch of
    the run when there are more, up to ``--max-batches``) and the time per tile is scaled to
    ``tiles``.
  - ``end-to-end s``: wall time of the whole ``tilerun.run(scene, model, out, options)`` call
    (open and check, probe, read, normalise, model, blend, write Zarr, finalise); ``engine s``
    is the part the run itself reports (``summary.seconds``: executing the chunk graph).
  - ``kept``: ``model-only s ÷ end-to-end s``, the fraction of the model's own speed the
    pipeline keeps (1.0: the pipeline adds nothing). Goal ≥ 0.90.
  - ``GPU busy %``: mean of ``torch.cuda.utilization()`` (NVML: the share of time a kernel was
    running) sampled every 0.2 s during the run; falls back to ``nvidia-smi`` polling when
    ``pynvml`` is missing. The same for the model-only loop, for reference (its ceiling).
  - ``Mpx/s``: scene pixels (16384²) ÷ end-to-end seconds.
  - ``peak GiB``: ``torch.cuda.max_memory_allocated`` during the run.
  - ``forward calls``: the run's forward calls by the number of tiles in them, from
    ``RunSummary.batches`` (the feeder's count, probe excluded), e.g. ``16×85 9×1``. On CUDA
    a short batch is padded to the full batch size before the model sees it.

* **Backends**: one row per backend of ``--backends`` (default on CUDA ``torch compile``, on a
  CPU ``torch onnxruntime``), each asked for explicitly (``PredictOptions(backend=...)``), at the
  throughput runs' precision and options, for one model (``--backend-size``, default the
  largest of ``--sizes``): a warm-up run, then the timed end-to-end run on the same scene, as
  in the throughput rows (no model-only loop). Before them, the correctness scene is run with
  the check model and that backend.

  - ``used``: ``summary.backend`` of the timed run (and of the other runs, when they differ):
    the backend that actually ran; tilerun falls back to the model as loaded, with a warning,
    when the one asked for fails to convert or misses its tolerance.
  - ``backend s``: ``summary.backend_seconds`` (converting or compiling, loading and checking
    the backend on the probe batch, before any work) of the correctness-scene, warm-up and
    timed runs. ``compile`` pays for inductor's compilation in the first run of each model
    (the check model's, then the row's when its width differs); later runs reuse it.
  - ``end-to-end s``, ``engine s``, ``GPU busy % run``, ``Mpx/s``, ``peak GiB``, ``forward
    calls``: as in the throughput rows; ``× default``: the default (``auto``) row's end-to-end
    seconds for the same model ÷ this row's (above 1: faster).
  - ``max |Δ| vs default``: the largest absolute difference of the correctness scene's logits
    from the default run's at the same device and precision (the correctness run at that
    precision, ``backend="auto"``; on CUDA that is ``torch``), and in brackets relative to the
    default's largest absolute logit.

  A backend that cannot run here at all (not installed, wrong device or precision, e.g.
  ``onnxruntime`` at bf16) gets a row saying why. A row starts only when its estimate fits in
  what is left of the time budget (``compile``: 150 s, two cold compiles; others 30 s), else
  its row says it was skipped.
* **Steps**: the seconds each step took (scene generation, each run), and whether it crashed.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
from _gpu_backends import backend_line, backend_row, backends_header
from _gpu_correctness import correctness, report_correctness
from _gpu_setup import Config, Interrupted, Steps, free, out, parse_args, scene
from _gpu_throughput import BusySampler, Row, throughput, throughput_header, throughput_row

import tilerun

# --------------------------------------------------------------------------------------------
# Header and main
# --------------------------------------------------------------------------------------------


def header(cfg: Config) -> None:
    cuda = torch.version.cuda or "none"
    gpu = torch.cuda.get_device_name(cfg.device) if cfg.cuda else "none (cpu run)"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    out("# tilerun GPU check\n")
    out(f"* date: {dt.datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}")
    out(f"* device: {cfg.device}; GPU: {gpu}")
    out(f"* torch {torch.__version__} (CUDA {cuda}, cuDNN {cudnn}); tilerun "
        f"{tilerun.__version__}; Python {sys.version.split()[0]}")
    out(f"* CPUs: {os.cpu_count()}; torch CPU threads: {torch.get_num_threads()}")
    out(f"* cudnn.benchmark {torch.backends.cudnn.benchmark}, cudnn.allow_tf32 "
        f"{torch.backends.cudnn.allow_tf32}, matmul.allow_tf32 "
        f"{torch.backends.cuda.matmul.allow_tf32}")
    out(f"* GPU busy sampling: {BusySampler(cfg.device).method}")
    out(f"* workdir: {cfg.workdir}; time budget {cfg.budget_s:.0f} s")


def _interrupt(signum: int, _frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def measure(cfg: Config, steps: Steps) -> None:
    paths: dict[str, Path] = {}

    def scenes() -> None:
        paths["check"] = scene(cfg.workdir, cfg.check_size, cfg.seed)
        paths["warm"] = scene(cfg.workdir, cfg.warmup_size, cfg.seed)
        paths["big"] = scene(cfg.workdir, cfg.scene_size, cfg.seed)

    steps.run("scenes", scenes)
    if len(paths) < 3:
        return
    check = steps.run("correctness", lambda: correctness(cfg, paths["check"]))
    if check:
        report_correctness(cfg, check.rows)
    throughput_header(cfg)
    rows: dict[int, Row] = {}
    for base in cfg.sizes:
        rows[base] = throughput(cfg, steps, base, paths["warm"], paths["big"])
        out(throughput_row(cfg, rows[base]))
        free(cfg)
    if cfg.backends:
        backends_header(cfg, check)
    for name in cfg.backends:
        b = backend_row(cfg, steps, name, check.default if check else None, paths)
        out(backend_line(cfg, b, rows.get(cfg.backend_size)))
        free(cfg)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    if cfg.cuda and not torch.cuda.is_available():
        print(f"CUDA is not available (torch {torch.__version__}); nothing to check "
              "(use --device cpu --quick for a CPU smoke test)")
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    steps = Steps(cfg.budget_s)
    header(cfg)
    try:
        measure(cfg, steps)
    except Interrupted as why:
        out(f"\n**Interrupted ({why}); the report is partial.**")
        steps.report()
        return 124
    steps.report()
    return 1 if steps.crashed else 0


if __name__ == "__main__":
    sys.exit(main())
