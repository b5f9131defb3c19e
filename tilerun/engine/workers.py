"""How many worker processes a local cluster may start: no more than the machine can run.

``--workers 64`` on a 2-core machine started 64 Python processes, each importing torch and
loading the model: the machine swapped, the cluster's start-up timed out, and the run never
finished. A local cluster is capped to the CPU cores this process may use and to the memory
available at :data:`WORKER_BASE_BYTES` per worker, with a one-line warning that gives the
figures; a machine without memory for one worker is refused.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace

from tilerun.engine.budget import available_memory, size_text
from tilerun.engine.options import PredictOptions
from tilerun.errors import OptionError, TilerunWarning

#: The floor of one worker process's memory before any chunk: Python with torch, distributed,
#: rasterio and zarr imported held 375 MiB (peak RSS, measured on Linux); with the model and
#: a backend's session, 512 MiB. The chunks and batches come on top (the memory budget).
WORKER_BASE_BYTES = 512 * 2**20


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def fit_workers(options: PredictOptions, cores: int | None = None,
                available: int | None = None) -> PredictOptions:
    """``options`` with ``workers`` capped to what the machine can run (see the module doc).

    Only a local cluster's count is capped: a scheduler address's workers run elsewhere.
    ``cores`` and ``available`` (bytes) default to this machine's.
    """
    if options.workers is None or "://" in options.scheduler:
        return options
    cores = cores if cores is not None else usable_cores()
    available = available if available is not None else available_memory()
    by_memory = available // WORKER_BASE_BYTES if available is not None else options.workers
    if by_memory < 1:
        raise OptionError("--workers", (
            f"each worker process needs at least {size_text(WORKER_BASE_BYTES)} (Python, "
            f"torch and the model) and this machine has {size_text(available or 0)} "
            "available; run without --workers"
        ))
    allowed = max(1, min(cores, by_memory))
    if options.workers <= allowed:
        return options
    memory = f"{size_text(available)} available" if available is not None else "memory unknown"
    warnings.warn(
        f"--workers {options.workers} is more than this machine can run ({cores} CPU "
        f"core(s), {memory}, at least {size_text(WORKER_BASE_BYTES)} per worker): using "
        f"{allowed} worker(s)",
        TilerunWarning, stacklevel=2,
    )
    return replace(options, workers=allowed)
