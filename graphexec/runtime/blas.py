"""The BLAS library's thread count, which is process-wide (OpenBLAS keeps one pool of threads).

Servers set it with `--blas-threads` (default 1, graphexec/runtime/tuning.py says why), and so does an
in-process session (1): graphexec's own threads (graphexec.runtime.intra_op) split large kernels
into one-thread products instead. On a machine whose other cores are busy, more than one BLAS thread
per product makes each product wait for threads that are not scheduled (W10 in process with a busy
neighbour on 2 cores: 2.7 s a step with the library's 2 threads, 0.17 s with 1).
"""
from __future__ import annotations

import threadpoolctl

_threads: int | None = None  # what we set; None: the library's default, read once when asked


def limit_threads(threads: int) -> None:
    """Let each BLAS call use `threads` threads (0: leave the library's default)."""
    global _threads
    if threads > 0:
        threadpoolctl.threadpool_limits(limits=threads, user_api="blas")
        _threads = threads


def single_threaded() -> bool:
    """Whether each BLAS call runs on its caller's thread alone (as far as graphexec set or read it)."""
    global _threads
    if _threads is None:
        counts = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
        _threads = max(counts, default=1)
    return _threads == 1
