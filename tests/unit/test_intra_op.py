"""graphexec.runtime.intra_op: large kernels split over several threads give what one thread gives, and
a part's failure or a run's cancellation comes back to the caller after every started part ended."""
from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest

from graphexec import errors
from graphexec.ops import conv_ops, interruptible, pool_ops
from graphexec.runtime import intra_op
from graphexec.runtime.context import ExecContext


def test_every_part_runs_once_on_both_threads(two_threads):
    seen, names = [], set()

    def body(part):
        time.sleep(0.002)
        seen.append(part)
        names.add(threading.current_thread().name)

    assert intra_op.run(40, body) == 2
    assert sorted(seen) == list(range(40))
    assert len(names) == 2  # the caller and a helper


def test_a_failing_part_raises_in_the_caller_after_the_others_ended(two_threads):
    running = []

    def body(part):
        running.append(part)
        time.sleep(0.005)
        if part == 3:
            raise ValueError("part 3 failed")
        running.remove(part)

    with pytest.raises(ValueError, match="part 3 failed"):
        intra_op.run(50, body)
    assert running == [3]  # nothing still running when the error came back
    intra_op.run(4, lambda part: None)  # the helpers are free again


def test_parts_do_not_split_again(two_threads):
    inner = []

    def body(part):
        inner.append(intra_op.ways(1 << 40))

    intra_op.run(8, body)
    assert set(inner) == {1}


def test_split_products_and_convolutions_equal_one_thread(two_threads, conv_library):
    rng = np.random.default_rng(0)
    ctx = ExecContext(np)
    a, b = rng.normal(size=(64, 70)).astype(np.float32), rng.normal(size=(70, 30)).astype(np.float32)
    np.testing.assert_array_equal(interruptible.matmul(ctx, a, b), a @ b)  # rows cut; each row one product
    np.testing.assert_allclose(interruptible.matmul(ctx, b.T.copy(), a.T.copy()), (a @ b).T, rtol=1e-5, atol=1e-5)
    x, w = rng.normal(size=(12, 9, 9, 3)).astype(np.float32), rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    attrs = dict(strides=(1, 2, 2, 1), padding="SAME")
    split = conv_ops._conv2d(ctx, x, w, **attrs)
    dy = rng.normal(size=split.shape).astype(np.float32)
    split_input = conv_ops._conv_backprop_input(ctx, np.array(x.shape), w, dy, **attrs)
    split_filter = [conv_ops._conv_backprop_filter(ctx, x, np.array(w.shape), dy, **attrs) for _ in range(5)]
    intra_op.set_threads(1)
    np.testing.assert_allclose(split, conv_ops._conv2d(ctx, x, w, **attrs), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(split_input, conv_ops._conv_backprop_input(ctx, np.array(x.shape), w, dy, **attrs),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(split_filter[0], conv_ops._conv_backprop_filter(ctx, x, np.array(w.shape), dy, **attrs),
                               rtol=1e-4, atol=1e-4)
    for again in split_filter[1:]:  # partial sums add up in one order, whichever thread took which
        np.testing.assert_array_equal(again, split_filter[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_blocks_of_a_product_keep_its_bits(two_threads, dtype):
    """Blocks of rows start on a multiple of the BLAS kernel's row tile (blas.row_tile): on
    OpenBLAS's Haswell kernel (12-row sgemm tiles) halves of 64 rows gave rows 24-31 other last bits. And
    no block of a product above OpenBLAS's small-matrix bound falls under it (SkylakeX kernels: 48 of 131
    rows by 784 by 24 gave other bits)."""
    rng = np.random.default_rng(4)
    ctx = ExecContext(np)
    for m, k, n in ((64, 70, 30), (100, 33, 20), (131, 784, 24), (250, 16, 40), (300, 700, 30), (200, 784, 24)):
        a, b = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
        np.testing.assert_array_equal(interruptible.matmul(ctx, a, b), a @ b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuts_at_the_blas_row_tile_keep_the_bits_on_this_machine(dtype):
    """blas.row_tile's claim for this machine's BLAS kernel, checked directly: rows computed in blocks cut at
    any multiple of the tile are the unsplit product's (each block above OpenBLAS's small-matrix bound)."""
    from graphexec.runtime import blas

    blas.limit_threads(1)
    tile = blas.row_tile(dtype == np.float32)
    assert tile in (*blas.SGEMM_ROW_TILES.values(), blas.ANY_ROW_TILE)
    rng = np.random.default_rng(7)
    for m, k, n in ((128, 784, 256), (200, 512, 300)):
        a, b = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
        whole = a @ b
        for cut in range(tile, m, tile):
            np.testing.assert_array_equal(np.concatenate([a[:cut] @ b, a[cut:] @ b]), whole, err_msg=f"cut {cut}")
        transposed = np.asfortranarray(a)  # x.T in a gradient is such a view
        for cut in range(tile, m, tile):
            np.testing.assert_array_equal(np.concatenate([transposed[:cut] @ b, transposed[cut:] @ b]),
                                          transposed @ b, err_msg=f"cut {cut} of a column-major operand")


def test_aligned_splits_cut_at_multiples_and_keep_their_bound():
    def cuts(*args):
        return [(part.start, part.stop) for part in intra_op.split(*args)]

    assert cuts(784, 2, None, 48) == [(0, 384), (384, 768), (768, 784)]  # the nearest multiple to 392
    assert cuts(64, 2, None, 48) == [(0, 48), (48, 64)]
    assert cuts(30, 2, None, 48) == [(0, 30)]
    assert cuts(300, 2, 100, 48) == [(0, 96), (96, 192), (192, 288), (288, 300)]  # at most 100 each
    assert cuts(100, 2, 30, 48) == [(0, 30), (30, 60), (60, 90), (90, 100)]  # a bound below 48 wins
    assert cuts(10, 3) == [(0, 4), (4, 8), (8, 10)]  # unaligned as before


def test_even_cuts_give_one_slice_a_part_cut_at_the_nearest_multiple():
    def cuts(*args):
        return [(part.start, part.stop) for part in intra_op.even_cuts(*args)]

    assert cuts(128, 2, 12) == [(0, 60), (60, 128)]  # 64 is nearest 60: split() gave 60 + 60 + 8
    assert cuts(128, 2, 16) == [(0, 64), (64, 128)]
    assert cuts(784, 2, 48) == [(0, 384), (384, 784)]
    assert cuts(300, 3, 12) == [(0, 96), (96, 204), (204, 300)]
    assert cuts(30, 2, 48) == [(0, 30)]  # no multiple inside: one slice
    assert cuts(10, 4, 1) == [(0, 2), (2, 5), (5, 8), (8, 10)]


def test_a_cancelled_run_stops_a_split_convolution(two_threads, conv_library, monkeypatch):
    # oneDNN's calls take one slice a thread unless a slice would pass the block limit: here 4 images
    monkeypatch.setattr(interruptible, "BLOCK_MACS", 8 * 8 * 5 * 3 * 3 * 2)
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(40, 8, 8, 2)).astype(np.float32), rng.normal(size=(3, 3, 2, 5)).astype(np.float32)
    ctx = ExecContext(np)
    checks = []

    class CancelledAfter:
        def __bool__(self):
            checks.append(1)
            return len(checks) > 3

    ctx.cancelled = CancelledAfter()
    with pytest.raises(errors.CancelledError):
        conv_ops._conv2d(ctx, x, w, strides=(1, 1, 1, 1), padding="SAME")
    assert len(checks) < 40  # stopped well before every chunk ran


@pytest.mark.parametrize("padding,size", [("SAME", 28), ("VALID", 15), ("SAME", 15)])
def test_split_pooling_equals_one_thread(two_threads, monkeypatch, padding, size):
    monkeypatch.setattr(intra_op, "MIN_ELEMENTS", 1)
    monkeypatch.setattr(pool_ops, "POOL_CHUNK_ELEMENTS", 2000)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=(16, size, size, 3)).astype(np.float32)  # ties: the first max takes dy
    attrs = dict(ksize=(1, 2, 2, 1), strides=(1, 2, 2, 1), padding=padding)
    ctx = ExecContext(np)
    z = pool_ops._max_pool(ctx, x, **attrs)
    dy = rng.normal(size=z.shape).astype(np.float32)
    grad = pool_ops._max_pool_grad_kernel(ctx, x, z, dy, **attrs)
    intra_op.set_threads(1)
    np.testing.assert_array_equal(z, pool_ops._max_pool(ctx, x, **attrs))
    np.testing.assert_array_equal(grad, pool_ops._max_pool_grad_kernel(ctx, x, z, dy, **attrs))
    assert grad.sum() == pytest.approx(dy.sum(), rel=1e-5)  # each window's dy went to exactly one input


def test_parts_on_helper_threads_follow_the_callers_numpy_error_handling(two_threads):
    """numpy's error state is per thread: a helper must neither warn where the caller ignores (the
    executor runs kernels under errstate(all="ignore")) nor ignore where the caller raises."""
    zeros = np.zeros((64, 100), np.float32)
    names = set()

    def log_rows(part):
        names.add(threading.current_thread().name)
        time.sleep(0.002)
        np.log(zeros[part:part + 1])

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning in any thread would reach this filter
        with np.errstate(all="ignore"):
            intra_op.run(64, log_rows)
    assert len(names) == 2
    with np.errstate(divide="raise"):
        with pytest.raises(FloatingPointError):
            intra_op.run(64, log_rows)


def test_short_row_blocks_join_their_neighbour():
    at_least = interruptible._at_least
    assert at_least([slice(0, 48), slice(48, 96), slice(96, 131)], 54) == [slice(0, 131)]
    assert at_least([slice(0, 96), slice(96, 192), slice(192, 200)], 54) == [slice(0, 96), slice(96, 200)]
    assert at_least([slice(0, 150), slice(150, 300)], 20) == [slice(0, 150), slice(150, 300)]
    assert at_least([slice(0, 10)], 54) == [slice(0, 10)]
