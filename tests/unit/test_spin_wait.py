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
