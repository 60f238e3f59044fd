"""server.batching.Batcher in one process, over a real WorkerCore: what the integration tests cannot
time precisely (a run cancelled while queued), and what they cannot provoke (a bug in the batch call)."""
from __future__ import annotations

import concurrent.futures
import threading
import time

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors
from graphexec.runtime.worker import Cancellation, PlanCall
from graphexec.server.batching import Batcher
from graphexec.session import InProcessRunner

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def doubled():
    """(runner, prepared plan of y = x * 2 over float32[None, 3])."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        y = x * 2.0
    runner = InProcessRunner()
    prepared, _, _ = runner.prepare(graph, [x.name], [y.name], [])
    return runner, prepared


def call_of(prepared, rows, cancellation=None, timeout_s=None, session="s"):
    return PlanCall("", prepared.cached.key, [rows], session_handle=session, cancellation=cancellation,
                    timeout_s=timeout_s)


def with_company(batcher, prepared):
    """Runs of two sessions, so the batcher's leaders wait for company (as under many clients)."""
    for session in ("a", "b"):
        batcher.run(call_of(prepared, rows(1), session=session), prepared.cached)


def rows(n, start=0.0):
    return np.arange(start, start + 3 * n, dtype=np.float32).reshape(n, 3)


def test_runs_that_arrive_together_share_one_call_and_get_their_rows(doubled):
    runner, prepared = doubled
    calls = []

    def execute(call, cached):
        calls.append(len(call.feeds[0]))
        return runner.core.run(call, cached)

    batcher = Batcher(64, 200_000, execute)
    with_company(batcher, prepared)
    calls.clear()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(batcher.run, call_of(prepared, rows(1 + i % 3, 100 * i), session=str(i)),
                               prepared.cached) for i in range(8)]
        answers = [f.result().fetches[0] for f in futures]
    for i, answer in enumerate(answers):
        assert np.array_equal(answer, rows(1 + i % 3, 100 * i) * 2)
    assert sum(calls) == sum(1 + i % 3 for i in range(8)) and len(calls) < 8


def test_a_run_cancelled_while_queued_is_answered_at_once_and_forgets_its_callback(doubled):
    runner, prepared = doubled
    batcher = Batcher(64, 1_500_000, lambda call, cached: runner.core.run(call, cached))
    with_company(batcher, prepared)
    cancellation = Cancellation()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        leader = pool.submit(batcher.run, call_of(prepared, rows(2)), prepared.cached)
        time.sleep(0.05)
        started = time.monotonic()
        follower = pool.submit(batcher.run, call_of(prepared, rows(1), cancellation), prepared.cached)
        time.sleep(0.05)
        cancellation.cancel()
        with pytest.raises(errors.CancelledError):
            follower.result()
        assert time.monotonic() - started < 1.0  # not at the end of the 1.5 s wait for a fuller batch
        assert np.array_equal(leader.result().fetches[0], rows(2) * 2)
    shared = Cancellation()  # one cancellation for many runs (a Run stream): no callback left behind
    batcher.run(call_of(prepared, rows(1), shared), prepared.cached)
    assert not shared._callbacks


def test_a_bug_in_the_batch_call_answers_every_run_and_the_next_runs_work(doubled):
    runner, prepared = doubled
    broken = threading.Event()

    def execute(call, cached):
        if len(call.feeds[0]) > 1 and not broken.is_set():
            broken.set()
            raise RuntimeError("a bug")
        return runner.core.run(call, cached)

    batcher = Batcher(64, 200_000, execute)
    with_company(batcher, prepared)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(batcher.run, call_of(prepared, rows(1, i), session=str(i)), prepared.cached)
                   for i in range(4)]
        outcomes = [f.exception(timeout=10) for f in futures]
    assert broken.is_set() and any(isinstance(o, RuntimeError) for o in outcomes)
    assert np.array_equal(batcher.run(call_of(prepared, rows(2)), prepared.cached).fetches[0], rows(2) * 2)


def test_runs_too_large_or_traced_go_alone(doubled):
    runner, prepared = doubled
    sizes = []
    batcher = Batcher(4, 0, lambda call, cached: sizes.append(len(call.feeds[0])) or runner.core.run(call, cached))
    assert np.array_equal(batcher.run(call_of(prepared, rows(4)), prepared.cached).fetches[0], rows(4) * 2)
    traced = call_of(prepared, rows(1))
    traced.trace = True
    batcher.run(traced, prepared.cached)
    assert sizes == [4, 1]
    assert batcher.metrics.unbatched_runs.labels("request")._value.get() == 2


def test_a_lone_session_never_waits_for_company(doubled):
    """One run after another of one session (a lone client, a Run stream): no run waits out the delay,
    until another session's runs arrive."""
    runner, prepared = doubled
    batcher = Batcher(64, 300_000, lambda call, cached: runner.core.run(call, cached))
    started = time.monotonic()
    for i in range(20):
        assert np.array_equal(batcher.run(call_of(prepared, rows(1, i)), prepared.cached).fetches[0], rows(1, i) * 2)
    assert time.monotonic() - started < 0.3 * 3  # 20 runs, not 20 delays (6 s)
    batcher.run(call_of(prepared, rows(1), session="another"), prepared.cached)
    started = time.monotonic()
    batcher.run(call_of(prepared, rows(1)), prepared.cached)
    assert time.monotonic() - started >= 0.3
