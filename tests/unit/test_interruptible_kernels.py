"""Large matrix products (MatMul, Conv2D and its gradients) in runs with a deadline or a cancellation are
computed in blocks, checking between blocks, so a run stops soon after it is cancelled rather than after
the whole product."""
from __future__ import annotations

import numpy as np
import pytest

from graphexec import errors
from graphexec.ops import conv_ops, interruptible, math_ops
from graphexec.runtime.context import ExecContext


class CancelledAfter:
    """Falsy for the first `checks` checks, then truthy (as a Cancellation that fires mid-kernel)."""

    def __init__(self, checks: int):
        self.left = checks

    def __bool__(self):
        self.left -= 1
        return self.left < 0


def _context(cancelled) -> ExecContext:
    ctx = ExecContext(np)
    ctx.cancelled = cancelled
    return ctx


def test_blocked_product_equals_numpys(monkeypatch):
    monkeypatch.setattr(interruptible, "BLOCK_MACS", 64 * 50 * 30)  # blocks of 30 rows
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(100, 64)).astype(np.float32), rng.normal(size=(64, 50)).astype(np.float32)
    result = math_ops._matmul(_context(CancelledAfter(1000)), a, b, False, False)
    np.testing.assert_allclose(result, a @ b, rtol=1e-5, atol=1e-5)
    transposed = math_ops._matmul(_context(CancelledAfter(1000)), a.T.copy(), b, True, False)
    np.testing.assert_allclose(transposed, a @ b, rtol=1e-5, atol=1e-5)


def test_a_cancellation_stops_the_product_between_blocks(monkeypatch):
    monkeypatch.setattr(interruptible, "BLOCK_MACS", 64 * 50 * 10)  # 10 blocks of 10 rows
    a, b = np.ones((100, 64), np.float32), np.ones((64, 50), np.float32)
    cancelled = CancelledAfter(3)
    with pytest.raises(errors.CancelledError):
        math_ops._matmul(_context(cancelled), a, b, False, False)
    assert cancelled.left == -1  # stopped at the 4th block's check, not after all 10 blocks


def test_a_product_with_a_long_inner_dimension_is_split_along_it_too(monkeypatch):
    monkeypatch.setattr(interruptible, "BLOCK_MACS", 1000 * 4)  # one row alone is 5000 multiply-adds
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 5000)).astype(np.float32), rng.normal(size=(5000, 4)).astype(np.float32)
    np.testing.assert_allclose(interruptible.matmul(_context(CancelledAfter(1000)), a, b), a @ b, rtol=1e-3,
                               atol=1e-3)
    cancelled = CancelledAfter(2)
    with pytest.raises(errors.CancelledError):
        interruptible.matmul(_context(cancelled), a, b)
    assert cancelled.left == -1  # stopped inside the first row, at its third block


def test_convolution_and_its_gradients_are_interruptible(monkeypatch, conv_library):
    monkeypatch.setattr(interruptible, "BLOCK_MACS", 500)
    rng = np.random.default_rng(2)
    # 6 images: oneDNN's calls (conv_library) take slices of whole images, here one each
    x, w = rng.normal(size=(6, 9, 9, 3)).astype(np.float32), rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    attrs = dict(strides=(1, 1, 1, 1), padding="SAME")
    expected = conv_ops._conv2d(ExecContext(np), x, w, **attrs)  # no deadline
    np.testing.assert_allclose(conv_ops._conv2d(_context(CancelledAfter(10_000)), x, w, **attrs), expected,
                               rtol=1e-4, atol=1e-4)
    dy = np.ones_like(expected)
    for kernel, args in ((conv_ops._conv2d, (x, w)),
                         (conv_ops._conv_backprop_input, (np.array(x.shape), w, dy)),
                         (conv_ops._conv_backprop_filter, (x, np.array(w.shape), dy))):
        cancelled = CancelledAfter(2)
        with pytest.raises(errors.CancelledError):
            kernel(_context(cancelled), *args, **attrs)
        assert cancelled.left == -1, kernel.__name__
