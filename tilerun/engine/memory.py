"""Memory management that costs no CPU: allocator options and garbage-collection pacing.

Keep the process's resident memory tied to what is live, without paying for it in CPU.

Each chunk allocates and frees buffers of 4–20 MB (pixels, batches, logits, canvases, pieces).
Two glibc defaults get in the way:

* its mmap threshold rises each time a large block is freed (up to 32 MiB), after which such
  buffers come from per-thread heap arenas and are rarely given back, so resident memory
  creeps up with the number of chunks, i.e. with image size;
* forcing every large buffer into its own mapping (a 1 MiB threshold, tilerun's first answer)
  keeps memory flat but makes each buffer page-fault its memory in again: on the 2-core
  benchmark machine that doubled the engine's CPU per pixel (0.25 vs 0.13 µs/px at 16384²).

So the threshold is *fixed* above every chunk buffer (no creep: it never moves), the heap is
trimmed back to the OS once 64 MiB at its top are free, and one arena serves all threads, so a
buffer freed by another thread than the one that allocated it is reused rather than stranded.
Measured peak RSS (null model, tile 256, chunk 1024; benchmarks/RESULTS.md): 4096² 660–806 MiB,
16384² 845–944 MiB, 32768² 1011–1193 MiB over two runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Iterator
from functools import cache

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 64 << 20
TRIM_THRESHOLD_BYTES = 64 << 20
ARENAS = 1


@cache
def tune_allocator() -> bool:
    """Set glibc's allocator options once per process; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return all(
            bool(libc.mallopt(option, value))
            for option, value in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                                  (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
                                  (M_ARENA_MAX, ARENAS))
        )
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False


#: Allocations of container objects between two young-generation garbage collections.
GC_GEN0_THRESHOLD = 100_000


@contextlib.contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """Collect the young generation every 100 000 allocations instead of 700 while a run
    executes, then restore the caller's thresholds.

    The scheduler, Zarr and asyncio allocate many short-lived container objects per chunk, so
    Python's default ran ~700 collections in an 8192² run; with this setting the engine's CPU
    fell by 10–15 % on the benchmark machine (the objects are freed by reference counting
    anyway; cycles are still collected, just less often).
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], GC_GEN0_THRESHOLD), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
