"""Keep freed memory in the process for the next allocation of its size, instead of returning it to the system.

A vectorized sweep's step allocates and frees blocks of megabytes (every point's states and
deltas). glibc hands blocks that large back to the system when they are freed, so the next step
touches fresh pages, and each first touch of a 4 KiB page is a page fault (microseconds in a
virtual machine): measured, a 64-point SRN step took 33 ms that way and 23 ms with the memory kept
(benchmarks/README.md). Raising glibc's mmap and trim thresholds keeps it. Process-wide; without
glibc (macOS, Windows, musl) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap and are reused (a 64-point E1 step's largest block is 10 MiB).
KEPT_BLOCK_BYTES = 32 * 1024 * 1024
# Free memory at the top of the heap is returned to the system only beyond this much.
KEPT_FREE_BYTES = 1024 * 1024 * 1024


@functools.cache
def keep_freed_memory() -> bool:
    """Set the thresholds once per process; True when glibc took them."""
    library = ctypes.util.find_library("c")
    if library is None:
        return False
    try:
        mallopt = ctypes.CDLL(library).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEPT_BLOCK_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES))
