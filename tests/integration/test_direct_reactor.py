"""One thread serves the direct link's connections without TLS, batching or not
(graphexec.server.direct_batching): many connections hold no thread each, a connection whose runs are slow
holds up no other, and large frames are read whole, against real `graphexec serve` processes."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from conftest import start_serve  # tests/integration is on sys.path
from test_direct_api import BATCHING

import graphexec as tf

pytestmark = pytest.mark.timeout(240)
CLIENTS = 48


@pytest.fixture(scope="module", params=list(BATCHING))
def server(request):
    """(target, pid) of a server with default limits, unbatched or batching."""
    started = []
    try:
        target = start_serve(started, *BATCHING[request.param])
        yield target, started[0].proc.pid
    finally:
        for process in started:
            process.kill()


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts the server's threads in /proc")
def test_many_connections_are_served_by_one_thread_not_a_thread_each(server, monkeypatch):
    """48 client threads running at once open 48 connections; each gets its own answers, and the server's
    thread count grows by a handful (its pool), not by a thread a connection."""
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    target, pid = server
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None])
        y = x * 2.0 + 1.0
        with tf.Session(target) as sess:
            sess.run(y, {x: np.zeros(1, np.float32)})
            before = _threads(pid)
            start, failures, peak = threading.Barrier(CLIENTS), [], []

            def client(index):
                try:
                    start.wait()
                    for run in range(30):
                        value = np.full(3, index * 100 + run, np.float32)
                        got = sess.run(y, {x: value})
                        if not np.array_equal(got, value * 2 + 1):
                            failures.append((index, run, got))
                    peak.append(_threads(pid))
                except Exception as exc:  # reported below
                    failures.append(repr(exc))

            threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            lanes = len(sess._connection.direct._idle)  # every connection it opened, idle again
    assert failures == []
    assert lanes >= CLIENTS // 2  # the runs really went over many connections at once
    assert max(peak) - before < CLIENTS // 2, (before, max(peak))


def _slow_product(size):
    s = tf.placeholder(tf.float32, [])
    a = tf.fill([size, size], s)  # made in the run (a fed scalar), so not folded at compile time
    return s, tf.reduce_sum(tf.matmul(a, a * 0.5))


def test_a_slow_run_holds_up_no_other_connection(server, monkeypatch):
    """A callable's first run, and its runs after a slow one (a 4000^2 product, ~1 s), go to a pool thread,
    though its connection just carried quick runs answered on the reactor's thread: another connection's
    quick runs are all answered while the slow one is still running. Run on the reactor's thread, they
    would all wait for it."""
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    target, _ = server
    with tf.Graph().as_default():
        s, slow = _slow_product(4000)
        x = tf.placeholder(tf.float32, [None])
        quick = x + 1.0
        with tf.Session(target) as sess:
            for run in range(5):  # its callable's runs are answered on the reactor's thread from the second
                assert sess.run(quick, {x: np.full(2, run, np.float32)}).tolist() == [run + 1.0] * 2
            for fed in (1.0, 2.0):  # the first run of its callable, then a run after a slow one
                slow_done, answer = threading.Event(), []
                slow_thread = threading.Thread(target=lambda fed=fed: (answer.append(sess.run(slow, {s: fed})),
                                                                      slow_done.set()))
                slow_thread.start()  # on the connection the quick runs used (the only idle one)
                answered_meanwhile = 0
                for run in range(20):
                    assert sess.run(quick, {x: np.full(2, run, np.float32)}).tolist() == [run + 1.0] * 2
                    answered_meanwhile += not slow_done.is_set()
                slow_thread.join()
                assert answer == [pytest.approx(0.5 * fed * fed * 4000 ** 3, rel=1e-4)]
                assert answered_meanwhile == 20


def _sized_product():
    n = tf.placeholder(tf.int32, [])
    a = tf.fill(tf.stack([n, n]), 1.0)  # as slow as the client asks: n^3 multiply-adds
    return n, tf.reduce_sum(tf.matmul(a, a))


def _answered_meanwhile(sess, slow_run) -> int:
    """How many of 20 quick runs on another connection were answered while `slow_run` ran."""
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None])
        quick = x + 1.0
        with tf.Session(sess.sess_str) as other:
            other.run(quick, {x: np.zeros(1, np.float32)})
            other.run(quick, {x: np.zeros(1, np.float32)})
            done = threading.Event()
            thread = threading.Thread(target=lambda: (slow_run(), done.set()))
            thread.start()
            meanwhile = 0
            for run in range(20):
                assert other.run(quick, {x: np.full(1, run, np.float32)}).tolist() == [run + 1.0]
                meanwhile += not done.is_set()
            thread.join()
            return meanwhile


def test_a_tenant_whose_quick_runs_turn_slow_runs_on_the_pool(server, monkeypatch):
    """Runs of a callable that were quick are answered on the reactor's thread, so the first one to turn
    slow (fed a large size) holds the others up once; after that strike every run of that tenant goes to
    the pool for a while, so another of its quick callables turning slow holds up no other connection."""
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    target, _ = server
    with tf.Graph().as_default():
        first_n, first = _sized_product()
        second_n, second = _sized_product()
        with tf.Session(target) as sess:
            for _ in range(4):  # quick: answered on the reactor's thread from the second run
                assert sess.run(first, {first_n: 8}) == 8 ** 3
                assert sess.run(second, {second_n: 8}) == 8 ** 3
            assert sess.run(first, {first_n: 3000}) == pytest.approx(3000.0 ** 3, rel=1e-4)  # the strike
            answers = []
            meanwhile = _answered_meanwhile(sess, lambda: answers.append(sess.run(second, {second_n: 4000})))
    assert answers == [pytest.approx(4000.0 ** 3, rel=1e-4)]
    assert meanwhile == 20


def test_a_large_frame_over_tcp_arrives_exactly(server, monkeypatch):
    """Without shared memory, a 6 MiB feed comes as one frame on the socket, which the reactor hands to a
    pool thread to read whole: the answer is bit for bit, and a small run after it on the same connection
    is answered too."""
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    monkeypatch.setenv("GRAPHEXEC_SHARED_MEMORY", "0")
    target, _ = server
    value = np.random.default_rng(4).normal(size=(1536, 1024)).astype(np.float32)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 1024])
        doubled, total = x * 2.0, tf.reduce_sum(x, axis=1)
        with tf.Session(target) as sess:
            got, sums = sess.run([doubled, total], {x: value})
            assert sess._connection.direct.calls == 1 and sess._connection.direct.local_name == ""
            assert got.tobytes() == (value * 2.0).tobytes()
            assert np.allclose(sums, value.sum(axis=1), rtol=1e-5, atol=1e-4)
            assert sess.run(total, {x: value[:2]}).tolist() == pytest.approx(value[:2].sum(axis=1).tolist(), rel=1e-5)
