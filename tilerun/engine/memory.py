"""Keep the process's resident memory tied to what is live, not to what was ever allocated.

glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which
chunk-sized numpy buffers come from the heap arenas of each worker thread and are rarely given
back: resident memory then creeps up with the number of chunks, i.e. with image size. Fixing
the threshold at 1 MiB makes every large buffer its own mapping, returned to the OS on free.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 20


@cache
def release_large_buffers_eagerly() -> bool:
    """Set glibc's mmap threshold once per process; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
