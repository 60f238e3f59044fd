"""The BLAS library's thread count, which is process-wide (OpenBLAS keeps one pool of threads).

Servers set it with `--blas-threads` (default 1, graphexec/runtime/tuning.py says why), and so does an
in-process session (1): graphexec's own threads (graphexec.runtime.intra_op) split large kernels
into one-thread products instead. On a machine whose other cores are busy, more than one BLAS thread
per product makes each product wait for threads that are not scheduled (W10 in process with a busy
neighbour on 2 cores: 2.7 s a step with the library's 2 threads, 0.17 s with 1).

Packing buffers (`warm_buffers`): OpenBLAS packs each product's operands into a 32 MB scratch buffer,
one per product running at the same moment, mapped when first needed and faulted in page by page as
packing writes it. Its kernels also read a little past what a small product wrote; while those pages
were never written, every such product runs ~3x slower, for as long as the process lives (AMD EPYC
family 23, one thread: W3's 128 x 784 x 256 product 4.3 ms, 1.45 ms once the pages had been written;
W10's 3136 x 1600 x 64 im2col product 55 against 21 ms; the same after writing those pages by hand).
One 384 x 384 product writes them, so servers and sessions run one per buffer they may use at startup.
"""
from __future__ import annotations

import ctypes
import functools
import os
import threading

import numpy as np
import threadpoolctl

_threads: int | None = None  # what we set; None: the library's default, read once when asked
_warmed = 0  # how many of OpenBLAS's buffers warm_buffers has written
_warm_lock = threading.Lock()
WARM_SIZE = 384  # the smallest square product found to write every page later products read (see above)
# Rows that OpenBLAS's single-precision kernel computes together, by the core it picked: a product cut into
# blocks of rows that start on multiples of its tile keeps the unsplit product's bits (ops/interruptible.py;
# every other cut of 128 x 784 x 256 on Haswell's kernel changed some rows). Checked on each machine by
# tests/unit/test_intra_op.py. Other cores, dtypes and libraries get ANY_ROW_TILE.
SGEMM_ROW_TILES = {"Haswell": 12, "SkylakeX": 16}
ANY_ROW_TILE = 48  # a multiple of every tile seen: sgemm 12 or 16 rows, dgemm 2 to 16


def limit_threads(threads: int) -> None:
    """Let each BLAS call use `threads` threads (0: leave the library's default)."""
    global _threads
    if threads > 0:
        threadpoolctl.threadpool_limits(limits=threads, user_api="blas")
        _threads = threads


def limit_again() -> None:
    """Apply the last limit_threads to BLAS libraries loaded since (importing numba loads SciPy's, where
    SciPy is installed)."""
    if _threads is not None:
        threadpoolctl.threadpool_limits(limits=_threads, user_api="blas")


def single_threaded() -> bool:
    """Whether each BLAS call runs on its caller's thread alone (as far as graphexec set or read it)."""
    global _threads
    if _threads is None:
        counts = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
        _threads = max(counts, default=1)
    return _threads == 1


@functools.cache  # sessions ask on every creation, and the library does not change in a process
def _openblas() -> bool:
    return any(info.get("internal_api") == "openblas" for info in threadpoolctl.threadpool_info())


# cblas_sgemm of the 64-bit-integer OpenBLAS that numpy's wheels carry (scipy-openblas64), as numpy calls it
SGEMM_SYMBOLS = ("scipy_cblas_sgemm64_", "cblas_sgemm64_")


@functools.cache
def sgemm_address() -> int | None:
    """The address of numpy's own cblas_sgemm with 64-bit integers, for helpers that call it without the
    GIL (runtime/spin_wait.py), or None: another library, or 32-bit integers."""
    for info in threadpoolctl.threadpool_info():
        folder = os.path.basename(os.path.dirname(info.get("filepath") or ""))
        if info.get("internal_api") != "openblas" or not folder.startswith("numpy"):  # numpy.libs, not SciPy's
            continue
        try:
            library = ctypes.CDLL(info["filepath"])
        except OSError:
            return None
        for name in SGEMM_SYMBOLS:
            function = getattr(library, name, None)
            if function is not None:
                return ctypes.cast(function, ctypes.c_void_p).value
    return None


@functools.cache
def row_tile(single_precision: bool) -> int:
    """The row multiple at which blocks of a product keep its bits (see SGEMM_ROW_TILES): a smaller one lets
    a split product's parts be even (W3's 128 rows: 60 + 68 rather than 48 + 80)."""
    # numpy's products run on its OpenBLAS; torch's MKL, also listed once torch is loaded, does not count.
    cores = {info.get("architecture") for info in threadpoolctl.threadpool_info()
             if info.get("internal_api") == "openblas"}
    if single_precision and len(cores) == 1:
        return SGEMM_ROW_TILES.get(cores.pop(), ANY_ROW_TILE)
    return ANY_ROW_TILE


def warm_buffers(calls: int) -> None:
    """Have OpenBLAS write its packing buffers for up to `calls` products running at once (see the
    module docstring); once per process, a later call only adds buffers. OpenBLAS hands a product the
    first buffer no other product holds, so `calls` products are run on as many threads at once (numpy
    lets go of the GIL for each)."""
    global _warmed
    with _warm_lock:
        if calls <= _warmed or not _openblas():
            return
        operand = np.ones((WARM_SIZE, WARM_SIZE), np.float32)
        start = threading.Barrier(calls)

        def product():
            start.wait()
            np.matmul(operand, operand)

        helpers = [threading.Thread(target=product, name="graphexec-blas-warm") for _ in range(calls - 1)]
        for helper in helpers:
            helper.start()
        product()
        for helper in helpers:
            helper.join()
        _warmed = calls
