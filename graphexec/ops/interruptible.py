"""Large matrix products: split over graphexec's intra-op threads, and stopped soon after a run's
deadline passes or it is cancelled.

A product of at least intra_op.MIN_MACS multiply-adds is cut into one block of rows (or of columns,
when it has fewer than ROWS_TO_CUT rows and more columns) per intra-op thread, each a one-thread
BLAS call. Row blocks keep the whole product's bits, so whether such a product splits is decided by
timing both ways (runtime/split_choice.py); column blocks do not (other last bits, seen on Haswell's
sgemm), so a product cut by columns always splits, as the thread count says. A run checks its deadline
and cancellation between steps; a single large product would otherwise run to its end however long it
takes, so in a run that can be stopped the blocks are also at most BLOCK_MACS multiply-adds (tens of
ms on one core), with a check before each: also along the inner dimension when one row alone is above
the block size (a convolution's filter gradient sums over every pixel of the batch).

A product may carry an epilogue (`AddRow`: + a bias vector, then ReLU or not; `Descend`: a gradient-descent
step from a variable's value), which ops fused after the product need (compiler/fuse_products.py): each
block of the result is finished by the thread that computed it, right after its product, while the block
is in that core's cache. Epilogues are elementwise, so a block's bits do not depend on the cut.
"""
from __future__ import annotations

import time

import numpy as np

from graphexec.runtime import blas, conv_library, intra_op, spin_wait, split_choice

BLOCK_MACS = 1 << 28
# A oneDNN call (runtime/conv_library.py) may be this many times BLOCK_MACS a thread, so that W10's conv2
# fits in one slice a thread on 2 threads (64 images, 640M multiply-adds: ~5.5 ms on one Zen 5 core); the
# longest call this allows, ~1.07G multiply-adds a thread, is ~9 ms there and still tens of ms on slower
# cores. A run stops between two such calls.
LIBRARY_BLOCK_FACTOR = 4
# Float32 products of at least this many multiply-adds go to oneDNN's matmul, whole, on the intra-op
# thread count (conv_library.product): W10's dense-layer products (411M) are, W3's (25.7M) keep the
# helpers that run their parts without the GIL (runtime/spin_wait.py).
LIBRARY_MACS = 1 << 27
# Blocks of rows start at multiples of the BLAS kernel's row tile (blas.row_tile): kernels compute rows in
# tiles (OpenBLAS's sgemm: 12 rows on Haswell, 16 on SkylakeX; dgemm 2-16), and a block that starts inside
# a tile gets other tiles, so other roundings, than the unsplit product. With it every row comes out with
# the same bits however many threads split the product.
ROWS_TO_CUT = 96  # fewer rows (and more columns): cut by columns, as row blocks would be thin
# OpenBLAS's SkylakeX kernels multiply a product of at most 100^3 multiply-adds with kernels of their own
# (its small-matrix path), which sum in another order: a row block of a larger product is never smaller,
# or its rows would differ in the last bits from the unsplit product's (seen on Zen 5, 1 Dec: 48 of 131
# rows by 784 by 24, 0.90M, differed; 48 of 300 by 700 by 30, 1.01M, kept them).
SMALL_PRODUCT_MACS = 100 ** 3
ALL = slice(None)


class AddRow:
    """The epilogue out + row (a vector of one value per column), then ReLU (numpy's maximum(x, 0)) or not:
    what Add and Relu after a product compute."""

    def __init__(self, row, relu: bool):
        self.row, self.relu = row, relu
        self.kind = spin_wait.ADD_ROW_RELU if relu else spin_wait.ADD_ROW

    def apply(self, xp, out, rows=ALL, columns=ALL) -> None:
        block = out[rows, columns]
        xp.add(block, self.row[columns], out=block)
        if self.relu:
            xp.maximum(block, block.dtype.type(0), out=block)

    def fields(self, out) -> tuple | None:
        """(slot fields, steps) for the compiled loops (spin_wait.fill_parts), or None where they cannot do it."""
        row = self.row
        if type(row) is not np.ndarray or row.dtype != np.float32 or row.shape != out.shape[1:] or row.strides != (4,):
            return None
        return (self.kind, row.ctypes.data, 0), (0, 4)


class Descend:
    """The epilogue value - out * alpha, out holding the gradient: ApplyGradientDescent's two passes."""

    kind = spin_wait.DESCEND

    def __init__(self, value, alpha):
        self.value, self.alpha = value, alpha

    def apply(self, xp, out, rows=ALL, columns=ALL) -> None:
        block = out[rows, columns]
        xp.multiply(block, self.alpha, out=block)
        xp.subtract(self.value[rows, columns], block, out=block)

    def fields(self, out) -> tuple | None:
        """(slot fields, steps) for the compiled loops (spin_wait.fill_parts), or None where they cannot do it."""
        value = self.value
        if (type(value) is not np.ndarray or value.dtype != np.float32 or value.shape != out.shape
                or value.strides != out.strides or np.asarray(self.alpha).dtype != np.float32):
            return None
        return (self.kind, value.ctypes.data, spin_wait.float32_bits(self.alpha)), value.strides


def oriented(xp, a, b, transpose_a: bool, transpose_b: bool) -> tuple:
    """(a, b) as MatMul's transpose attrs ask, as views (their last two axes swapped)."""
    return (xp.swapaxes(a, -1, -2) if transpose_a else a), (xp.swapaxes(b, -1, -2) if transpose_b else b)


def matmul(ctx, a, b, out=None, epilogue=None):
    """a @ b (into `out` when given), then `epilogue` (AddRow, Descend) on it: split over the intra-op
    threads when large, and in interruptible blocks when the run can be stopped (numpy, 2-D)."""
    if ctx.xp is not np or a.ndim != 2 or b.ndim != 2:
        return _finished(ctx.xp, ctx.xp.matmul(a, b, out=out), epilogue)
    (m, k), n = a.shape, b.shape[1]
    macs = m * k * n
    ways = intra_op.ways(macs)
    stoppable = ctx.deadline is not None or ctx.cancelled is not False
    if macs >= LIBRARY_MACS and out is None and conv_library.takes_products(a, b):
        threads = library_threads(ctx, macs)
        if threads:
            ctx.check_interrupt()
            return _finished(np, conv_library.product(a, b, threads=threads), epilogue)
    in_blocks = stoppable and macs > BLOCK_MACS  # cut whatever the threads, so a stop comes between blocks
    if ways == 1 and not in_blocks:
        return _finished(np, np.matmul(a, b, out=out), epilogue)
    tile = blas.row_tile(a.dtype == b.dtype == np.float32)
    by_rows = m >= n or m >= ROWS_TO_CUT
    if not by_rows or in_blocks:
        return _split_product(ctx, a, b, out, ways, stoppable, by_rows, tile, epilogue)
    # Row blocks keep the bits: split only where that is faster.
    key = (m, k, n, a.dtype.char, b.dtype.char, epilogue and epilogue.kind)
    ways = split_choice.choose(key, ways)
    started = time.perf_counter()
    if ways == 1:
        out = _finished(np, np.matmul(a, b, out=out), epilogue)
    else:
        out = _split_product(ctx, a, b, out, ways, stoppable, by_rows, tile, epilogue)
    split_choice.record(key, ways, time.perf_counter() - started)
    return out


def _finished(xp, out, epilogue):
    if epilogue is not None:
        epilogue.apply(xp, out)
    return out


def library_threads(ctx, macs: int) -> int:
    """On how many threads a kernel of `macs` multiply-adds runs as one oneDNN call (conv_library), or 0
    where it must not be one call: in a run that can be stopped, one above LIBRARY_BLOCK_FACTOR *
    BLOCK_MACS a thread (a stop comes only between calls), and more than one thread in a forked child
    where OpenMP teams no longer work (conv_library.teams_work)."""
    threads = intra_op.ways(macs, one_thread_calls=True)
    stoppable = ctx.deadline is not None or ctx.cancelled is not False
    if stoppable and macs > LIBRARY_BLOCK_FACTOR * BLOCK_MACS * threads:
        return 0
    return threads if threads == 1 or conv_library.teams_work() else 0


def _split_product(ctx, a, b, out, ways: int, stoppable: bool, by_rows: bool, tile: int, epilogue=None):
    (m, k), n = a.shape, b.shape[1]
    macs = m * k * n
    if out is None:
        out = np.empty((m, n), np.result_type(a, b))
    length, across = (m, n) if by_rows else (n, m)  # the side cut into blocks, and the other one
    most = max(1, BLOCK_MACS // max(k * across, 1)) if stoppable else None
    depth = k if not stoppable or k * across <= BLOCK_MACS else max(1, BLOCK_MACS // max(across, 1))
    blocks = intra_op.even_cuts(length, ways, tile) if by_rows else None
    # In a run that can be stopped (every run a server serves) blocks are at most `most` rows; one a thread
    # is still the cut when they fit (`split` cut W3's 128 rows 60 + 60 + 8 there: three blocks, which ran as
    # Python parts, never the helpers' compiled loop).
    if blocks is None or (most is not None and max(cut.stop - cut.start for cut in blocks) > most):
        blocks = intra_op.split(length, ways, most, tile if by_rows else 1)
    if by_rows and macs > SMALL_PRODUCT_MACS:
        blocks = _at_least(blocks, SMALL_PRODUCT_MACS // (k * across) + 1)

    def operands(cut):
        return (a[cut], b, out[cut]) if by_rows else (a, b[:, cut], out[:, cut])

    def region(cut):  # the block's rows and columns
        return (cut, ALL) if by_rows else (ALL, cut)

    if depth == k and 1 < len(blocks) <= intra_op.threads():  # a gemm a thread (more blocks: checks between)
        ctx.check_interrupt()
        fields = (spin_wait.NONE, (0, 0)) if epilogue is None else epilogue.fields(out)
        if fields is not None and intra_op.run_products(a, b, out, blocks, by_rows, *fields):
            return out

    def product(part):
        a_part, b_part, into = operands(blocks[part])
        for inner in range(0, k, depth):
            ctx.check_interrupt()
            if inner == 0:
                np.matmul(a_part[:, :depth], b_part[:depth], out=into)
            else:
                into += a_part[:, inner:inner + depth] @ b_part[inner:inner + depth]
        if epilogue is not None:
            epilogue.apply(np, out, *region(blocks[part]))

    intra_op.run(len(blocks), product, ways)
    return out


def _at_least(blocks: list[slice], rows: int) -> list[slice]:
    """Consecutive `blocks` merged until each has at least `rows` rows (a short one joins the block before
    it, or after it when it is the first), so every block still starts where one of `blocks` started."""
    merged: list[slice] = []
    for block in blocks:
        if merged and (block.stop - block.start < rows or merged[-1].stop - merged[-1].start < rows):
            merged[-1] = slice(merged[-1].start, block.stop)
        else:
            merged.append(block)
    return merged
