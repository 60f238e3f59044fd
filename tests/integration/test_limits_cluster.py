"""Limits of `serve --redis` with real workers and a real Redis: a run that kills its worker is not
resent to the next one, a worker's memory limit fails the run instead of the worker, readiness
follows Redis and the workers, Redis out of memory is RESOURCE_EXHAUSTED, and retries across a
10 s Redis pause end in the truth."""
from __future__ import annotations

import signal
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import graphexec as tf
from graphexec import errors
from graphexec.client.connection import parse_target

from conftest import Process, free_port  # tests/integration is on sys.path (rootdir-relative conftest)

pytestmark = pytest.mark.timeout(240)
READINESS = "graphexec.v1.GraphExecService"
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def _health(target: str, service: str) -> int:
    with grpc.insecure_channel(parse_target(target)[0]) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def _wait_for_health(target: str, service: str, wanted: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _health(target, service) != wanted:
        assert time.monotonic() < deadline, f"{service or 'liveness'} never became {wanted}"
        time.sleep(0.2)


def _cpu_ticks(process: Process) -> int:
    with open(f"/proc/{process.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _busiest(workers: list[Process]) -> Process:
    before = [_cpu_ticks(w) for w in workers]
    time.sleep(0.5)
    return max(workers, key=lambda w: _cpu_ticks(w) - before[workers.index(w)])


def _long_chain():
    """(x, total): 400 products of a fed [n, n] x, long enough to kill its worker while it runs: the
    tests feed 800 x 800 (~1.2 s on 2 Zen 5 cores with AVX-512; 600 x 600 took ~0.5 s there, and the
    kill, 0.5 s in, came after the run had ended)."""
    x = tf.placeholder(tf.float32, [None, None])
    y = x
    for _ in range(400):
        y = tf.tanh(tf.matmul(y, x))
    return x, tf.reduce_sum(y)


def _run_killing_its_worker(sess, total, feed, workers) -> tuple[errors.OpError | None, Process]:
    """Run `total` while its worker (the busiest) is SIGKILLed, as the kernel's OOM killer would; returns
    the run's error and the killed worker."""
    failure = {}

    def run_long():
        try:
            sess.run(total, feed)
        except errors.OpError as exc:
            failure["error"] = exc

    runner = threading.Thread(target=run_long)
    runner.start()
    victim = _busiest(workers)
    victim.signal(signal.SIGKILL)
    runner.join(timeout=120)
    return failure.get("error"), victim


def test_a_run_whose_worker_died_is_not_resent_and_is_refused_for_a_cool_down(redis_server, serve, worker,
                                                                              wait_for_workers):
    workers = [worker(redis_server.url) for _ in range(2)]
    target = serve("--redis", redis_server.url)
    wait_for_workers(target, 2)
    with tf.Graph().as_default():
        x, total = _long_chain()
        value = np.random.default_rng(0).normal(size=(800, 800)).astype(np.float32) * 0.03
        with tf.Session(target) as sess:
            error, victim = _run_killing_its_worker(sess, total, {x: value}, workers)
            assert isinstance(error, errors.AbortedError), error
            assert "died while running this run" in error.message
            survivor = next(w for w in workers if w is not victim)
            assert survivor.proc.poll() is None  # not sent the run that killed the other one
            with pytest.raises(errors.ResourceExhaustedError, match="killed the worker running it; it is refused"):
                sess.run(total, {x: value})
            small = np.eye(3, dtype=np.float32) * 0.1
            np.testing.assert_allclose(sess.run(total, {x: small}),
                                       _numpy_chain(small.astype(np.float64), 400).sum(), rtol=1e-4)
    assert survivor.proc.poll() is None


def test_a_run_that_killed_its_worker_is_refused_by_every_replica(redis_server, serve, worker, wait_for_workers):
    """The cool-down is shared through Redis: sending the same run to another replica does not get it
    another worker to kill."""
    workers = [worker(redis_server.url) for _ in range(2)]
    replicas = [serve("--redis", redis_server.url) for _ in range(2)]
    for target in replicas:
        wait_for_workers(target, 2)
    with tf.Graph().as_default():
        x, total = _long_chain()
        value = np.random.default_rng(1).normal(size=(800, 800)).astype(np.float32) * 0.03
        with tf.Session(replicas[0]) as sess:
            error, victim = _run_killing_its_worker(sess, total, {x: value}, workers)
        assert isinstance(error, errors.AbortedError), error
        survivor = next(w for w in workers if w is not victim)
        time.sleep(1.0)  # replicas merge the shared list every 0.5 s
        with tf.Session(replicas[1]) as other:
            with pytest.raises(errors.ResourceExhaustedError, match="killed the worker running it; it is refused"):
                other.run(total, {x: value})
            small = np.eye(3, dtype=np.float32) * 0.1  # other feeds of the same graph still run
            np.testing.assert_allclose(other.run(total, {x: small}), _numpy_chain(small.astype(np.float64), 400).sum(),
                                       rtol=1e-4)
    assert survivor.proc.poll() is None


def _numpy_chain(x, steps):
    y = x
    for _ in range(steps):
        y = np.tanh(y @ x)
    return y


def test_a_worker_memory_limit_fails_the_run_not_the_worker(redis_server, serve, worker, wait_for_workers):
    process = worker(redis_server.url, "--memory-limit", "3GiB")
    target = serve("--redis", redis_server.url)
    wait_for_workers(target, 1)
    with tf.Graph().as_default():
        dims = tf.placeholder(tf.int32, [2])
        total = tf.reduce_sum(tf.fill(dims, 1.0))  # its size is known only from the feed
        with tf.Session(target) as sess:
            with pytest.raises(errors.ResourceExhaustedError, match="out of memory"):
                sess.run(total, {dims: [40_000, 40_000]})  # 6.4 GB
            assert process.proc.poll() is None
            assert sess.run(total, {dims: [300, 200]}) == 60_000.0


def test_readiness_follows_redis_and_workers_while_liveness_stays_serving(redis_server, serve, worker):
    target = serve("--redis", redis_server.url)
    assert _health(target, "") == SERVING
    _wait_for_health(target, READINESS, NOT_SERVING)  # no worker yet
    worker(redis_server.url)
    _wait_for_health(target, READINESS, SERVING)
    redis_server.process.signal(signal.SIGSTOP)
    try:
        _wait_for_health(target, READINESS, NOT_SERVING)
        assert _health(target, "") == SERVING
    finally:
        redis_server.process.signal(signal.SIGCONT)
    _wait_for_health(target, READINESS, SERVING)


def test_redis_out_of_memory_is_resource_exhausted_with_the_reason(processes, serve, worker, wait_for_workers):
    redis_server = _small_redis(processes, "4mb")
    worker(redis_server["url"])
    target = serve("--redis", redis_server["url"])
    wait_for_workers(target, 1)
    with tf.Graph().as_default():
        big = tf.constant(np.ones(2 << 20, np.float32))  # an 8 MB graph upload
        with tf.Session(target) as sess:
            with pytest.raises(errors.ResourceExhaustedError, match="Redis at .* is out of memory"):
                sess.run(tf.reduce_sum(big))
    deadline = time.monotonic() + 20  # Redis frees the refused upload's input buffer in its own time
    while True:
        try:
            with tf.Graph().as_default():
                x = tf.placeholder(tf.float32, [2])
                with tf.Session(target) as sess:
                    assert sess.run(tf.reduce_sum(x), {x: [1.0, 2.0]}) == 3.0
            break
        except errors.ResourceExhaustedError:
            assert time.monotonic() < deadline
            time.sleep(0.5)


def _small_redis(processes, maxmemory: str) -> dict:
    port = free_port()
    process = Process(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                       "no", "--maxmemory", maxmemory], r"Ready to accept connections")
    processes.append(process)
    return {"url": f"redis://127.0.0.1:{port}", "process": process}


def test_runs_retried_across_a_10s_redis_pause_report_the_truth(redis_server, serve, worker, wait_for_workers):
    worker(redis_server.url)
    target = serve("--redis", redis_server.url)
    wait_for_workers(target, 1)
    graph = tf.Graph()
    with graph.as_default():
        counter = tf.Variable(0, name="applied_runs")
        bump = counter.assign_add(1)
    with tf.Session(target, graph=graph) as sess:
        sess.run(counter.initializer)
    succeeded, failed, stop = [], [], threading.Event()

    def client():
        with tf.Session(target, graph=graph) as sess:
            while not stop.is_set():
                try:
                    sess.run(bump)
                    succeeded.append(1)
                except errors.OpError as exc:
                    failed.append(exc)

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    time.sleep(1.0)
    redis_server.process.signal(signal.SIGSTOP)
    time.sleep(10.0)
    redis_server.process.signal(signal.SIGCONT)
    time.sleep(2.0)
    stop.set()
    for thread in clients:
        thread.join(timeout=90)
    with tf.Session(target, graph=graph) as sess:
        applied = sess.run(counter)
    assert succeeded and not failed, failed[:3]
    assert applied == len(succeeded)  # every reported success applied exactly once, nothing else applied


@pytest.mark.parametrize("with_redis", [True, False])
def test_open_sessions_per_tenant_are_limited(redis_server, serve, with_redis):
    target = serve("--max-sessions-per-tenant", "3", *(("--redis", redis_server.url) if with_redis else ()))
    graph = tf.Graph()
    sessions = [tf.Session(target, graph=graph) for _ in range(3)]
    with pytest.raises(errors.ResourceExhaustedError, match="3 open sessions.*--max-sessions-per-tenant"):
        tf.Session(target, graph=graph)
    sessions.pop().close()
    sessions.append(tf.Session(target, graph=graph))  # a closed session no longer counts
    for session in sessions:
        session.close()
