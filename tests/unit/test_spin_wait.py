"""graphexec.runtime.spin_wait and the intra-op threads that use it: a spin sees another thread's store at
once, holds no GIL meanwhile, stops after its budget, and helpers that spin or sleep both take the next part."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from graphexec.runtime import compiled, intra_op, spin_wait

pytest.importorskip("numba")  # scripts/test.sh installs it (the kernels extra)


@pytest.fixture
def spin():
    assert spin_wait.prepare(wait=True), "the spin did not compile, or the cycle counter was not usable"
    yield


def test_a_store_by_another_thread_ends_the_spin_and_the_gil_stays_free(spin):
    flags, outcome = np.zeros(1, np.int64), {}
    started = threading.Event()

    def waiter():
        started.set()
        outcome["changed"] = spin_wait.wait_for_change(flags, 0, 10.0)
        outcome["ended"] = time.perf_counter()

    thread = threading.Thread(target=waiter)
    thread.start()
    started.wait()
    time.sleep(0.02)  # the waiter is spinning now
    began = time.perf_counter()
    total = sum(range(200_000))  # pure Python: it could not run while a spin held the GIL (10 s)
    python_ran_in = time.perf_counter() - began
    assert total == 199_999 * 100_000
    assert "changed" not in outcome
    stored = time.perf_counter()
    flags[0] = 7
    thread.join(5)
    assert outcome["changed"] is True
    assert python_ran_in < 2.0
    assert outcome["ended"] - stored < 2.0  # not the 10 s budget


def test_an_unchanged_flag_spins_for_its_budget_and_no_longer(spin):
    flags = np.full(1, 5, np.int64)
    began = time.perf_counter()
    assert spin_wait.wait_for_change(flags, 5, 0.03) is False
    took = time.perf_counter() - began
    assert 0.025 <= took < 1.0
    assert spin_wait.wait_for_change(flags, 4, 10.0) is True  # already different: at once


def test_without_compiled_loops_it_never_spins():
    previous = compiled.choice()
    compiled.choose("numpy")
    try:
        began = time.perf_counter()
        assert spin_wait.wait_for_change(np.zeros(1, np.int64), 0, 5.0) is False
        assert time.perf_counter() - began < 0.5
        assert spin_wait.available() is False
    finally:
        compiled.choose(previous)


@pytest.mark.parametrize("spin_us", [0, 200_000])
def test_helpers_take_parts_whether_they_spin_or_sleep(two_threads, spin, spin_us):
    """With a long spin the helper is spinning when the second job comes; with none it is asleep. Either
    way both threads must work on it: each part waits until both are inside."""
    previous = intra_op.spin_seconds()
    intra_op.set_spin(spin_us)
    try:
        for _ in range(2):
            both_inside = threading.Barrier(2, timeout=10)
            names = set()

            def body(part):
                names.add(threading.current_thread().name)
                both_inside.wait()

            assert intra_op.run(2, body) == 2
            assert len(names) == 2
            time.sleep(0.05)  # the helper's spin (200 ms) is still on, or it sleeps (0)
            pool = intra_op._pool()
            assert pool.sleeping == (1 if spin_us == 0 else 0)
    finally:
        intra_op.set_spin(previous * 1e6)


def test_a_helper_that_spun_out_its_budget_sleeps_and_is_woken(two_threads, spin):
    previous = intra_op.spin_seconds()
    intra_op.set_spin(20_000)  # 20 ms
    try:
        intra_op.run(2, lambda part: None)
        deadline = time.monotonic() + 5
        while intra_op._pool().sleeping != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert intra_op._pool().sleeping == 1
        both_inside = threading.Barrier(2, timeout=10)
        assert intra_op.run(2, lambda part: both_inside.wait()) == 2
    finally:
        intra_op.set_spin(previous * 1e6)


def test_the_spin_setting_is_read_from_the_environment_once(monkeypatch):
    monkeypatch.setattr(intra_op, "_spin_read", False)
    monkeypatch.setenv(intra_op.SPIN_VARIABLE, "250")
    assert intra_op.spin_seconds() == pytest.approx(250e-6)
    monkeypatch.setenv(intra_op.SPIN_VARIABLE, "0")
    assert intra_op.spin_seconds() == pytest.approx(250e-6)  # read once
    monkeypatch.setattr(intra_op, "_spin_read", False)
    monkeypatch.setenv(intra_op.SPIN_VARIABLE, "-1")
    with pytest.raises(ValueError, match="GRAPHEXEC_INTRA_OP_SPIN_US must be a number of microseconds >= 0"):
        intra_op.spin_seconds()
    monkeypatch.setenv(intra_op.SPIN_VARIABLE, "soon")
    with pytest.raises(ValueError, match="got 'soon'"):
        intra_op.spin_seconds()
    monkeypatch.setattr(intra_op, "_spin_read", False)
    monkeypatch.delenv(intra_op.SPIN_VARIABLE)
    assert intra_op.spin_seconds() == pytest.approx(intra_op.DEFAULT_SPIN_US * 1e-6)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_starts_its_own_helpers(two_threads, spin):
    intra_op.run(2, lambda part: None)  # the parent's helper exists
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            both_inside = threading.Barrier(2, timeout=10)
            ok = intra_op.run(2, lambda part: both_inside.wait()) == 2
            os.write(writer, b"1" if ok else b"0")
        except BaseException:  # noqa: BLE001 - reported to the parent as a failure
            os.write(writer, b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(reader, 1) == b"1"


def _operands(rng, m, k, n, layout):
    """(a, b, out) float32 for out = a @ b in one of the layouts products are split into."""
    if layout == "rows":
        return rng.normal(size=(m, k)).astype(np.float32), rng.normal(size=(k, n)).astype(np.float32), \
            np.empty((m, n), np.float32)
    if layout == "column-major":  # x.T in a weight gradient
        return np.asfortranarray(rng.normal(size=(m, k)).astype(np.float32)), \
            rng.normal(size=(k, n)).astype(np.float32), np.empty((m, n), np.float32)
    if layout == "row block of a transpose":
        return rng.normal(size=(k, m + 16)).astype(np.float32).T[16:], \
            rng.normal(size=(k, n)).astype(np.float32), np.empty((m, n), np.float32)
    # a block of columns: b and out are strided views
    return rng.normal(size=(m, k)).astype(np.float32), rng.normal(size=(k, n + 8)).astype(np.float32)[:, 8:], \
        np.empty((m, n + 8), np.float32)[:, 8:]


@pytest.mark.parametrize("layout", ["rows", "column-major", "row block of a transpose", "columns"])
@pytest.mark.parametrize("shape", [(64, 784, 256), (57, 130, 3), (2, 2, 2), (300, 17, 129)])
def test_a_part_run_by_the_compiled_sgemm_has_numpys_bits(spin, layout, shape):
    assert spin_wait.products_available()
    a, b, out = _operands(np.random.default_rng(1), *shape, layout)
    slot = np.zeros(spin_wait.SLOT_SIZE, np.int64)
    assert spin_wait.fill(slot, a, b, out)
    slot[0] = spin_wait.POSTED
    assert spin_wait.finish(slot)  # no helper watches this slot: run here
    assert slot[0] == spin_wait.DONE
    np.testing.assert_array_equal(out, a @ b)


@pytest.mark.parametrize("layout", ["rows", "column-major", "columns"])
def test_parts_are_filled_alike_with_and_without_the_compiled_addresses(spin, monkeypatch, layout):
    """fill_parts reads the arrays' addresses through a compiled call once it is compiled, through numpy's
    ctypes before: the slots are the same, and each block's are the ones `fill` gives for its views."""
    a, b, out = _operands(np.random.default_rng(7), 40, 30, 50, layout)
    by_rows = layout != "columns"
    cuts = (slice(0, 12), slice(12, 40)) if by_rows else (slice(0, 20), slice(20, 50))
    assert spin_wait.ADDRESSES.wait("float32") is not None
    compiled = np.zeros((2, spin_wait.SLOT_SIZE), np.int64)
    assert spin_wait.fill_parts(compiled, a, b, out, cuts, by_rows)
    monkeypatch.setattr(spin_wait.ADDRESSES, "get", lambda dtype: None)  # not compiled (yet)
    plain = np.zeros((2, spin_wait.SLOT_SIZE), np.int64)
    assert spin_wait.fill_parts(plain, a, b, out, cuts, by_rows)
    np.testing.assert_array_equal(compiled, plain)
    for slot, (a_, b_, out_) in zip(plain, _blocks(a, b, out, cuts, by_rows)):
        single = np.zeros(spin_wait.SLOT_SIZE, np.int64)
        assert spin_wait.fill(single, a_, b_, out_)
        np.testing.assert_array_equal(slot, single)


def test_parts_numpy_would_not_hand_to_gemm_are_refused(spin):
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(8, 6)).astype(np.float32), rng.normal(size=(6, 5)).astype(np.float32)
    slot = np.zeros(spin_wait.SLOT_SIZE, np.int64)
    unaligned = np.frombuffer(bytearray(8 * 6 * 4 + 1), np.float32, 48, offset=1).reshape(8, 6)
    refused = [
        (a.astype(np.float64), b.astype(np.float64), np.empty((8, 5))),  # not float32
        (a[:1], b, np.empty((1, 5), np.float32)),  # one row: numpy's gemv
        (a, b[:, :1], np.empty((8, 1), np.float32)),  # one column
        (a[::-1], b, np.empty((8, 5), np.float32)),  # a negative stride
        (a[:, ::2], b[::2], np.empty((8, 5), np.float32)),  # no unit stride
        (a, b, np.empty((5, 8), np.float32).T),  # a column-major output
        (unaligned, b, np.empty((8, 5), np.float32)),
    ]
    square = rng.normal(size=(6, 6)).astype(np.float32)
    refused.append((square, square.T, np.empty((6, 6), np.float32)))  # a matrix by its transpose: numpy's syrk
    refused.append((square, square.T.copy(), square))  # the output is an operand: numpy copies first
    for a_, b_, out in refused:
        assert not spin_wait.fill(slot, a_, b_, out)
    assert not slot.any()


def _blocks(a, b, out, cuts, by_rows):
    """The (a, b, out) views of each block of a product cut into `cuts`."""
    return [(a[cut], b, out[cut]) if by_rows else (a, b[:, cut], out[:, cut]) for cut in cuts]


@pytest.mark.parametrize("spin_us", [0, 200_000])
@pytest.mark.parametrize("by_rows", [True, False])
def test_products_split_over_helpers_equal_numpys(two_threads, spin, spin_us, by_rows):
    """A helper spinning takes its part at once; one asleep is woken, or the caller runs the part itself
    when the helper comes too late. Either way every block is numpy's product of that block, and the
    output is complete when run_products returns."""
    previous = intra_op.spin_seconds()
    intra_op.set_spin(spin_us)
    rng = np.random.default_rng(3)
    try:
        for _ in range(20):
            a, b, out = _operands(rng, 96, 300, 100, "rows")
            cuts = (slice(0, 48), slice(48, 96)) if by_rows else (slice(0, 40), slice(40, 100))
            assert intra_op.run_products(a, b, out, cuts, by_rows)
            for a_, b_, out_ in _blocks(a, b, out, cuts, by_rows):
                np.testing.assert_array_equal(out_, a_ @ b_)
            pool = intra_op._pool()
            assert not pool.slots[:, 0].any() and pool.own[0] == spin_wait.IDLE  # every slot idle again
    finally:
        intra_op.set_spin(previous * 1e6)


def test_a_spinning_helper_runs_the_parts_posted_to_it(two_threads, spin, monkeypatch):
    previous = intra_op.spin_seconds()
    intra_op.set_spin(200_000)
    ran_here = []
    real = spin_wait.finish
    monkeypatch.setattr(spin_wait, "finish", lambda slot: ran_here.append(real(slot)) or ran_here[-1])
    rng = np.random.default_rng(4)
    a, b, out = _operands(rng, 768 + 16, 768, 768, "rows")  # the caller's block: ~5-10 ms; the helper's 16 rows
    cuts = (slice(0, 768), slice(768, 784))
    try:
        for _ in range(10):
            out.fill(0)
            assert intra_op.run_products(a, b, out, cuts, True)
            np.testing.assert_array_equal(out[768:], a[768:] @ b)
    finally:
        intra_op.set_spin(previous * 1e6)
    # The caller ran its own block (True) and found the helper's taken (False) each time; on a loaded
    # machine the helper may not get its CPU within a block now and then.
    assert ran_here[0::2] == [True] * 10
    assert ran_here[1::2].count(False) >= 7, ran_here


def test_a_product_waits_for_a_helper_that_took_its_part(two_threads, spin):
    """The caller must not return while a helper still writes: the helper's block (~20 ms) is 64x the
    caller's, which is long enough for the spinning helper to take its part first."""
    rng = np.random.default_rng(5)
    a, b, out = _operands(rng, 16 + 1024, 1024, 1024, "rows")
    cuts = (slice(0, 16), slice(16, 1040))
    expected = a[16:] @ b
    warm = _operands(rng, 32, 64, 16, "rows")
    previous = intra_op.spin_seconds()
    intra_op.set_spin(200_000)
    try:
        for _ in range(3):
            out.fill(0)
            intra_op.run_products(*warm, (slice(0, 16), slice(16, 32)), True)  # the helper spins now
            assert intra_op.run_products(a, b, out, cuts, True)
            assert np.array_equal(out[16:], expected)  # at once: a helper still at work leaves partial sums
    finally:
        intra_op.set_spin(previous * 1e6)


def test_products_are_declined_when_the_helpers_are_busy_or_absent(two_threads, spin):
    rng = np.random.default_rng(6)
    a, b, out = _operands(rng, 64, 64, 32, "rows")
    out.fill(0)
    halves = (slice(0, 32), slice(32, 64))
    pool = intra_op._pool()
    with pool.products:  # another thread's product holds the helpers
        assert not intra_op.run_products(a, b, out, halves, True)
    assert not intra_op.run_products(a, b, out, halves[:1], True)  # one block: nothing to split
    assert not intra_op.run_products(a, b, out, (slice(0, 20), slice(20, 40), slice(40, 64)), True)  # 3 for 2
    assert not intra_op.run_products(a.astype(np.float64), b, out, halves, True)
    assert not intra_op.run_products(a, b, out, (slice(0, 63), slice(63, 64)), True)  # a one-row block: gemv
    intra_op.set_threads(1)
    assert not intra_op.run_products(a, b, out, halves, True)
    assert not out.any()  # declined: nothing was computed


def test_split_products_go_through_the_helpers_and_keep_the_bits(two_threads, spin, monkeypatch):
    from graphexec.ops import interruptible
    from graphexec.runtime.context import ExecContext

    calls = []
    real = intra_op.run_products
    monkeypatch.setattr(intra_op, "run_products",
                        lambda a, b, out, cuts, *rest: calls.append(len(cuts)) or real(a, b, out, cuts, *rest))
    rng = np.random.default_rng(8)
    ctx = ExecContext(np)
    for m, k, n in ((128, 784, 256), (200, 784, 24), (96, 70, 300)):  # cut by rows: the bits kept
        a, b = rng.normal(size=(m, k)).astype(np.float32), rng.normal(size=(k, n)).astype(np.float32)
        for _ in range(8):  # both ways, as split_choice times them
            np.testing.assert_array_equal(interruptible.matmul(ctx, a, b), a @ b)
            np.testing.assert_array_equal(interruptible.matmul(ctx, np.asfortranarray(a), b), a @ b)
    assert calls and min(calls) >= 2


@pytest.mark.parametrize("stoppable", [False, True])
@pytest.mark.parametrize("tile", [12, 16, 48])
def test_a_split_product_is_one_part_a_thread_cut_on_the_row_tile(two_threads, spin, monkeypatch, tile, stoppable):
    """W3's 128 rows on Haswell's 12-row tile were cut 60 + 60 + 8: three parts for two threads, which went
    through Python's parts (`intra_op.run`) instead of the helpers' compiled loop; in a run that can be
    stopped (a deadline: every run a server serves) still after that was fixed for the others."""
    from graphexec.ops import interruptible
    from graphexec.runtime import blas, split_choice
    from graphexec.runtime.context import ExecContext

    handed = []
    real = intra_op.run_products
    monkeypatch.setattr(intra_op, "run_products",
                        lambda a, b, out, cuts, *rest: handed.append([cut.stop - cut.start for cut in cuts])
                        or real(a, b, out, cuts, *rest))
    bits_kept_at = blas.row_tile(True)  # this machine's tile: other tiles' cuts may change the last bits
    monkeypatch.setattr(blas, "row_tile", lambda single_precision: tile)
    monkeypatch.setattr(split_choice, "choose", lambda key, ways: ways)
    rng = np.random.default_rng(9)
    ctx = ExecContext(np, deadline=time.monotonic() + 600 if stoppable else None)
    for m in (128, 784, 1000):
        a, b = rng.normal(size=(m, 96)).astype(np.float32), rng.normal(size=(96, 80)).astype(np.float32)
        out = interruptible.matmul(ctx, a, b)
        rows = handed.pop()
        assert len(rows) == 2 and sum(rows) == m and rows[0] % tile == 0, (m, rows)
        assert abs(rows[0] - m / 2) <= tile / 2
        if bits_kept_at % tile == 0:
            np.testing.assert_array_equal(out, a @ b)


def _epilogue_case(rng, kind, out):
    """(epilogue fields, numpy's passes over a block of `out`'s shape) for one epilogue kind; the operands
    include NaN and infinities, which ReLU passes or zeroes as numpy's maximum does."""
    n = out.shape[1]
    row = rng.normal(size=n).astype(np.float32)
    row[:4] = (np.nan, -np.inf, np.inf, -0.0)
    value = rng.normal(size=(out.shape[0], out.strides[0] // 4)).astype(np.float32)[:, :n]
    alpha = np.float32(0.37)
    if kind == spin_wait.ADD_ROW:
        return (kind, row.ctypes.data, 0), lambda product: product + row
    if kind == spin_wait.ADD_ROW_RELU:
        return (kind, row.ctypes.data, 0), lambda product: np.maximum(product + row, np.float32(0))
    return (kind, value.ctypes.data, spin_wait.float32_bits(alpha)), lambda product: value - product * alpha


@pytest.mark.parametrize("kind", [spin_wait.ADD_ROW, spin_wait.ADD_ROW_RELU, spin_wait.DESCEND])
@pytest.mark.parametrize("layout", ["rows", "column-major", "columns"])
def test_a_parts_epilogue_gives_the_bits_of_numpys_passes(spin, kind, layout):
    rng = np.random.default_rng(4)
    a, b, out = _operands(rng, 37, 50, 29, layout)
    a[0, :3] = (np.nan, np.inf, 0.0)  # NaN and inf reach the epilogue through the product
    fields, numpy_passes = _epilogue_case(rng, kind, out)
    slot = np.zeros(spin_wait.SLOT_SIZE, np.int64)
    assert spin_wait.fill(slot, a, b, out, fields)
    slot[0] = spin_wait.POSTED
    assert spin_wait.finish(slot)
    expected = numpy_passes(a @ b)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(expected))  # -0.0 apart from 0.0
    assert np.isnan(expected).any()
    assert (expected == 0).any() == (kind == spin_wait.ADD_ROW_RELU)


def test_split_products_finish_each_block_where_it_was_computed(two_threads, spin, monkeypatch):
    """Epilogues run by the compiled loops, on the caller's block and the helper's, give numpy's passes over
    each block, whichever thread runs which block; blocks of rows keep the whole product's bits. A block
    of columns (fewer rows than ROWS_TO_CUT) moves the bias row and the variable's value with it."""
    from graphexec.ops import interruptible
    from graphexec.runtime.context import ExecContext

    posted = []
    real = intra_op.run_products
    monkeypatch.setattr(intra_op, "run_products", lambda a, b, out, cuts, by_rows, epilogue=spin_wait.NONE,
                        steps=(0, 0): posted.append((epilogue[0], by_rows, cuts))
                        or real(a, b, out, cuts, by_rows, epilogue, steps))
    monkeypatch.setattr(interruptible.split_choice, "choose", lambda key, ways: ways)  # always split
    rng = np.random.default_rng(9)
    ctx = ExecContext(np)
    for m, k, n in ((128, 784, 256), (784, 128, 256), (96, 784, 300), (80, 784, 400)):  # all >= MIN_MACS
        a, b = rng.normal(size=(m, k)).astype(np.float32), rng.normal(size=(k, n)).astype(np.float32)
        row, value = rng.normal(size=n).astype(np.float32), rng.normal(size=(m, n)).astype(np.float32)
        alpha = np.asarray(0.1, np.float32)
        for _ in range(3):
            got = interruptible.matmul(ctx, a, b, epilogue=interruptible.AddRow(row, True))
            kind, by_rows, cuts = posted.pop()
            assert kind == spin_wait.ADD_ROW_RELU and by_rows == (m >= interruptible.ROWS_TO_CUT) and len(cuts) == 2
            into = np.empty((m, n), np.float32)
            interruptible.matmul(ctx, np.asfortranarray(a), b, out=into, epilogue=interruptible.Descend(value, alpha))
            assert posted.pop()[0] == spin_wait.DESCEND
            if by_rows:
                np.testing.assert_array_equal(got, np.maximum(a @ b + row, np.float32(0)))
                np.testing.assert_array_equal(into, value - (a @ b) * alpha)
                continue
            for cut in cuts:  # column blocks: numpy's product of each block, then its passes
                block = a @ b[:, cut]
                np.testing.assert_array_equal(got[:, cut], np.maximum(block + row[cut], np.float32(0)))
                np.testing.assert_array_equal(into[:, cut], value[:, cut] - (np.asfortranarray(a) @ b[:, cut]) * alpha)
