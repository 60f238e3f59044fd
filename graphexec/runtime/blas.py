"""The BLAS library's thread count, which is process-wide (OpenBLAS keeps one pool of threads).

Servers set it with `--blas-threads` (default 1, graphexec/server/tuning.py says why); an in-process
session sets it when its `tf.ConfigProto` names `intra_op_parallelism_threads`, TensorFlow's knob for
the threads one op may use. On a machine whose other cores are busy, more than one thread per product
makes each product wait for threads that are not scheduled (W10 in process with a busy neighbour on 2
cores: 2.7 s a step with the library's 2 threads, 0.17 s with 1).
"""
from __future__ import annotations

import threadpoolctl


def limit_threads(threads: int) -> None:
    """Let each BLAS call use `threads` threads (0: leave the library's default)."""
    if threads > 0:
        threadpoolctl.threadpool_limits(limits=threads, user_api="blas")
