"""Process-wide settings of a serving process (`graphexec serve`, `graphexec worker`).

BLAS threads (`--blas-threads`, default 1): a server runs many small products from several request
threads at once, and OpenBLAS's own worker threads then only compete with them and with gRPC's
threads for the cores; on a machine whose other cores are busy a product waits for threads that are
not scheduled (W3 on 2 cores with a busy neighbour: a step stalled for tens of ms). One thread per
product keeps a step's time what its arithmetic costs (set through graphexec.runtime.blas).

Freed memory (glibc only): by default glibc gives every freed array above its mmap threshold back to
the kernel, so a training step that allocates the same 800 KB arrays every time page-faults them in
again (~600 faults a W3 step). A server keeps arrays under MMAP_BYTES on its heap and trims the heap
only past KEEP_BYTES of free memory. An explicit MALLOC_*_ setting in the environment wins.
"""
from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_BYTES = 64 << 20
KEEP_BYTES = 256 << 20


def keep_freed_memory() -> bool:
    """Have glibc keep freed arrays for reuse (see the module docstring); whether it was set."""
    if platform.libc_ver()[0] != "glibc" or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
