"""Kernel pieces that stop soon after a run's deadline passes or it is cancelled.

A run checks its deadline and cancellation between steps; a single large matrix product (MatMul,
and the products inside Conv2D and its gradients) would otherwise run to its end however long it
takes. In a run that has a deadline or a cancellation, such a product goes in blocks of about
BLOCK_MACS multiply-adds (tens of ms on one core), with a check before each block: in rows, and
also along the inner dimension when one row alone is above the block size (a convolution's filter
gradient sums over every pixel of the batch).
"""
from __future__ import annotations

import numpy as np

BLOCK_MACS = 1 << 28


def matmul(ctx, a, b, out=None):
    """a @ b (into `out` when given), in interruptible blocks when it is large and the run can be
    stopped (numpy, 2-D)."""
    if not (a.ndim == 2 and b.ndim == 2 and ctx.xp is np and (ctx.deadline is not None or ctx.cancelled is not False)
            and a.shape[0] * a.shape[1] * b.shape[1] > BLOCK_MACS):
        return ctx.xp.matmul(a, b, out=out)
    (m, k), n = a.shape, b.shape[1]
    if out is None:
        out = np.empty((m, n), np.result_type(a, b))
    rows = max(1, BLOCK_MACS // max(k * n, 1))
    depth = k if k * n <= BLOCK_MACS else max(1, BLOCK_MACS // max(n, 1))
    for start in range(0, m, rows):
        block = out[start:start + rows]
        for inner in range(0, k, depth):
            ctx.check_interrupt()
            if inner == 0:
                np.matmul(a[start:start + rows, :depth], b[:depth], out=block)
            else:
                block += a[start:start + rows, inner:inner + depth] @ b[inner:inner + depth]
    return out
