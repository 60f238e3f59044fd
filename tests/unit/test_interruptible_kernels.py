"""Large matrix products in runs with a deadline or a cancellation are computed in row blocks, checking
between blocks, so a run stops soon after it is cancelled rather than after the whole product."""
from __future__ import annotations

import numpy as np
import pytest

from graphexec import errors
from graphexec.ops import math_ops
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
    monkeypatch.setattr(math_ops, "INTERRUPTIBLE_BLOCK_MACS", 64 * 50 * 30)  # blocks of 30 rows
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(100, 64)).astype(np.float32), rng.normal(size=(64, 50)).astype(np.float32)
    result = math_ops._matmul(_context(CancelledAfter(1000)), a, b, False, False)
    np.testing.assert_allclose(result, a @ b, rtol=1e-5, atol=1e-5)
    transposed = math_ops._matmul(_context(CancelledAfter(1000)), a.T.copy(), b, True, False)
    np.testing.assert_allclose(transposed, a @ b, rtol=1e-5, atol=1e-5)


def test_a_cancellation_stops_the_product_between_blocks(monkeypatch):
    monkeypatch.setattr(math_ops, "INTERRUPTIBLE_BLOCK_MACS", 64 * 50 * 10)  # 10 blocks of 10 rows
    a, b = np.ones((100, 64), np.float32), np.ones((64, 50), np.float32)
    cancelled = CancelledAfter(3)
    with pytest.raises(errors.CancelledError):
        math_ops._matmul(_context(cancelled), a, b, False, False)
    assert cancelled.left == -1  # stopped at the 4th block's check, not after all 10 blocks
