"""Dynamic batching (`serve --max-batch-size`) on real server processes, with many client threads at
once: each client gets the numpy answer for its own rows; plans that may mix rows are never batched;
one client's bad values or short deadline fail only that client's run; and `serve --redis` forms the
batch at the replica and sends it to the worker as one RunPlan.

Products (MatMul) are compared with allclose, not bitwise: BLAS may sum a row's products in another
order for another number of rows, so a row's last bits can depend on the batch it ran in. Elementwise
plans are compared bitwise with the same server's unbatched answer (a traced run always runs alone).
"""
from __future__ import annotations

import concurrent.futures
import sys
import threading
import time

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors

from conftest import Process  # tests/integration is on sys.path (rootdir-relative conftest)
from test_metrics import Scrape, metrics_url, moved

pytestmark = pytest.mark.timeout(240)
CLIENTS = 24
RUNS = 15
RNG = np.random.default_rng(7)
W1 = RNG.normal(0, 0.3, (6, 16)).astype(np.float32)
B1 = RNG.normal(0, 0.1, 16).astype(np.float32)
W2 = RNG.normal(0, 0.3, (16, 4)).astype(np.float32)
UNBATCHED = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)  # a traced run always runs alone


def start_serve(processes, *args) -> tuple[str, str]:
    process = Process([sys.executable, "-m", "graphexec", "serve", "--port", "0", "--metrics-port", "0", *args],
                      r"serving on (grpc://\S+)")
    processes.append(process)
    return process.match.group(1), metrics_url(process)


def mlp_graph():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 6], name="x")
        w1, b1 = tf.Variable(W1, name="w1"), tf.Variable(B1, name="b1")
        probabilities = tf.nn.softmax(tf.matmul(tf.nn.relu(tf.nn.bias_add(tf.matmul(x, w1), b1)), tf.constant(W2)))
        init = tf.global_variables_initializer()
    return graph, x, probabilities, init


def mlp_numpy(x):
    logits = np.maximum(x.astype(np.float64) @ W1 + B1, 0) @ W2
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def client_rows(index: int, run: int) -> np.ndarray:
    """A request's own rows: 1 to 3 of them, different for every client and run."""
    return np.random.default_rng(1000 * index + run).normal(size=(1 + (index + run) % 3, 6)).astype(np.float32)


def concurrently(clients: int, work) -> list:
    """work(index) on `clients` threads started together; their results, re-raising the first failure."""
    start = threading.Barrier(clients)

    def client(index):
        start.wait()
        return work(index)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return [f.result() for f in [pool.submit(client, i) for i in range(clients)]]


def serve_mlp_clients(target: str) -> None:
    """CLIENTS sessions (one each), RUNS runs each: each answer is numpy's for the client's own rows."""
    graph, x, probabilities, init = mlp_graph()
    with tf.Session(target, graph=graph) as sess:
        sess.run(init)

    def work(index):
        with tf.Session(target, graph=graph) as sess:
            for run in range(RUNS):
                rows = client_rows(index, run)
                got = sess.run(probabilities, {x: rows})
                assert got.shape == (len(rows), 4)
                np.testing.assert_allclose(got, mlp_numpy(rows), rtol=2e-5, atol=1e-6)
                alone = sess.run(probabilities, {x: rows}, options=UNBATCHED)
                np.testing.assert_allclose(got, alone, rtol=1e-6, atol=1e-7)

    concurrently(CLIENTS, work)


def batches(before: Scrape, after: Scrape) -> tuple[float, float]:
    """(batched kernel calls, runs they served) between two scrapes."""
    return (moved(before, after, "graphexec_batch_size_count"), moved(before, after, "graphexec_batch_size_sum"))


def test_concurrent_clients_each_get_their_own_rows(processes):
    target, url = start_serve(processes, "--max-batch-size", "32", "--max-batch-delay-us", "2000")
    before = Scrape(url)
    serve_mlp_clients(target)
    after = Scrape(url)
    calls, runs = batches(before, after)
    assert runs == CLIENTS * RUNS  # every untraced run went through the batcher ...
    assert calls < runs * 0.8, (calls, runs)  # ... and many shared a kernel call
    assert moved(before, after, "graphexec_unbatched_runs_total", reason="request") == CLIENTS * RUNS  # traced
    assert moved(before, after, "graphexec_unbatched_runs_total", reason="plan") == 1  # the initializer writes


def test_elementwise_plans_are_bitwise_equal_to_unbatched(processes):
    target, url = start_serve(processes, "--max-batch-size", "64", "--max-batch-delay-us", "2000")
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 6])
        y = tf.reduce_max(tf.tanh(x * 1.7 + 0.3) * x, axis=1)

    def work(index):
        with tf.Session(target, graph=graph) as sess:
            for run in range(RUNS):
                rows = client_rows(index, run)
                got = sess.run(y, {x: rows})
                assert np.array_equal(got, sess.run(y, {x: rows}, options=UNBATCHED))
                assert np.array_equal(got, np.max(np.tanh(rows * np.float32(1.7) + np.float32(0.3)) * rows, 1))

    before = Scrape(url)
    concurrently(CLIENTS, work)
    calls, runs = batches(before, Scrape(url))
    assert runs == CLIENTS * RUNS and calls < runs * 0.8, (calls, runs)


def test_plans_that_mix_rows_are_never_batched(processes):
    target, url = start_serve(processes, "--max-batch-size", "64", "--max-batch-delay-us", "2000")
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 6])
        column_sums = tf.reduce_sum(x, axis=0)  # over the rows: would sum other clients' rows too
        centred = x - tf.reduce_mean(x, axis=0)

    def work(index):
        with tf.Session(target, graph=graph) as sess:
            for run in range(RUNS):
                rows = client_rows(index, run)
                sums, got = sess.run([column_sums, centred], {x: rows})
                np.testing.assert_allclose(sums, rows.sum(0), rtol=1e-6, atol=1e-6)
                np.testing.assert_allclose(got, rows - rows.mean(0), rtol=1e-6, atol=1e-6)

    before = Scrape(url)
    concurrently(CLIENTS, work)
    after = Scrape(url)
    assert moved(before, after, "graphexec_unbatched_runs_total", reason="plan") == CLIENTS * RUNS
    assert batches(before, after) == (0, 0)


def test_one_clients_bad_values_fail_only_its_own_runs(processes):
    target, url = start_serve(processes, "--max-batch-size", "64", "--max-batch-delay-us", "20000")
    table = RNG.normal(size=(5, 3)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        ids = tf.placeholder(tf.int32, [None, 2])
        embedded = tf.reduce_sum(tf.gather(tf.constant(table), ids), 1)
    bad = {3, 11}

    def work(index):
        failures = 0
        with tf.Session(target, graph=graph) as sess:
            for run in range(RUNS):
                rows = np.random.default_rng(index * 100 + run).integers(0, 5, size=(2, 2)).astype(np.int32)
                if index in bad:
                    rows[1, 0] = 99  # out of range: only this run may fail
                    with pytest.raises(errors.InvalidArgumentError, match="99"):
                        sess.run(embedded, {ids: rows})
                    failures += 1
                    continue
                assert np.array_equal(sess.run(embedded, {ids: rows}), table[rows].sum(1))
        return failures

    before = Scrape(url)
    assert sum(concurrently(CLIENTS, work)) == len(bad) * RUNS
    after = Scrape(url)
    assert moved(before, after, "graphexec_runs_total", code="OK") == (CLIENTS - len(bad)) * RUNS
    assert moved(before, after, "graphexec_runs_total", code="INVALID_ARGUMENT") == len(bad) * RUNS


def test_a_short_deadline_fails_only_its_own_run(processes):
    delay_s = 2.0  # batches wait this long to fill: the short deadline below runs out while queued
    target, url = start_serve(processes, "--max-batch-size", "64", "--max-batch-delay-us", str(int(delay_s * 1e6)))
    graph, x, probabilities, init = mlp_graph()
    with tf.Session(target, graph=graph) as sess:
        sess.run(init)
    for _ in range(2):  # compiled now, and runs of two sessions: leaders wait for company, as under many clients
        with tf.Session(target, graph=graph) as sess:
            sess.run(probabilities, {x: client_rows(0, 0)})

    def work(index):
        rows = client_rows(index, 0)
        with tf.Session(target, graph=graph) as sess:
            started = time.monotonic()
            if index == 0:
                with pytest.raises(errors.DeadlineExceededError):
                    sess.run(probabilities, {x: rows}, options=tf.RunOptions(timeout_in_ms=300))
                return time.monotonic() - started
            np.testing.assert_allclose(sess.run(probabilities, {x: rows}), mlp_numpy(rows), rtol=2e-5, atol=1e-6)
            return time.monotonic() - started

    before = Scrape(url)
    took = concurrently(8, work)
    assert took[0] < delay_s / 2, took  # answered when its own deadline passed, not with the batch
    # The server counts a run as it returns, which may follow the answers; and when the client's own gRPC
    # deadline reaches the server before the run's timer, the run ends as CANCELLED.
    give_up = time.monotonic() + 10
    while True:
        after = Scrape(url)
        counts = [sum(moved(before, after, "graphexec_runs_total", code=code) for code in ("DEADLINE_EXCEEDED", "CANCELLED")),
                  moved(before, after, "graphexec_runs_total", code="OK")]
        if counts == [1, 7] or time.monotonic() > give_up:
            break
        time.sleep(0.1)
    assert counts == [1, 7]


def test_redis_replica_sends_each_batch_to_the_worker_as_one_run(processes, redis_server, wait_for_workers):
    worker = Process([sys.executable, "-m", "graphexec", "worker", "--redis", redis_server.url, "--metrics-port",
                      "0"], r"graphexec worker (\S+) .*serving on")
    processes.append(worker)
    target, url = start_serve(processes, "--redis", redis_server.url, "--max-batch-size", "32",
                              "--max-batch-delay-us", "5000")
    wait_for_workers(target, 1)
    worker_url = metrics_url(worker)
    before, worker_before = Scrape(url), Scrape(worker_url)
    serve_mlp_clients(target)
    after, worker_after = Scrape(url), Scrape(worker_url)
    calls, runs = batches(before, after)
    assert runs == CLIENTS * RUNS and calls < runs * 0.8, (calls, runs)
    plans_run = moved(worker_before, worker_after, "graphexec_worker_runs_total", code="OK")
    assert plans_run == calls + CLIENTS * RUNS + 1  # a RunPlan per batch, per traced run, and the initializer


@pytest.mark.parametrize("link", ["direct", "grpc"])
def test_a_batch_gathers_more_runs_than_the_server_has_threads(processes, link):
    """A run waiting for its batch frees its --threads turn: with 2 threads, 8 clients that send together
    share one kernel call (before, the 2 runs holding the threads were all a batch could ever hold)."""
    clients, rounds = 8, 3
    grpc_only = ("--direct-port", "-1") if link == "grpc" else ()
    target, url = start_serve(processes, "--threads", "2", "--max-batch-size", str(clients),
                              "--max-batch-delay-us", "1000000", *grpc_only)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 6])
        y = tf.tanh(x) * 3.0
    together = threading.Barrier(clients)

    def work(index):
        with tf.Session(target, graph=graph) as sess:
            for run in range(rounds):  # the first round's leader may not know yet that other sessions send
                rows = client_rows(index, run)[:1]
                together.wait()
                assert np.array_equal(sess.run(y, {x: rows}), np.tanh(rows) * np.float32(3.0))

    before = Scrape(url)
    concurrently(clients, work)
    after = Scrape(url)
    calls, runs = batches(before, after)
    assert runs == clients * rounds, (calls, runs)
    beyond_threads = calls - moved(before, after, "graphexec_batch_size_bucket", le="2.0")
    assert beyond_threads >= 1, (calls, runs)  # a batch of more than 2 runs
