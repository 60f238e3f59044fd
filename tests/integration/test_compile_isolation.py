"""Large graphs are decoded and compiled in compile processes (graphexec.server.compile_pool), under a
compile deadline, while the server keeps serving everyone else. How much other tenants' runs are
slowed is measured by `python -m bench.compile_stall`, not here."""
from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time

import numpy as np
import pytest
from conftest import Process  # tests/integration is on sys.path (rootdir-relative conftest)

import graphexec as tf
from graphexec import digest, errors
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import convert
from graphexec.server.compile_pool import CompilePool

pytestmark = pytest.mark.timeout(240)


def _chain(length: int):
    """(x, y): y = ((x * 1.0001 + x) * 1.0001 + x) ..., `length` times: 1 + 3 * length nodes."""
    x = tf.placeholder(tf.float32, [4], name="x")
    y = x
    for _ in range(length):
        y = y * 1.0001 + x
    return x, y


def _numpy_chain(x: np.ndarray, length: int) -> np.ndarray:
    y = x
    for _ in range(length):
        y = y * np.float32(1.0001) + x
    return y


def test_a_compile_past_the_deadline_is_deadline_exceeded_naming_the_graph_and_the_server_goes_on(serve):
    target = serve("--compile-timeout-s", "1", "--compile-process-nodes", "100", "--max-graph-nodes", "200000")
    with tf.Graph().as_default():
        _, y = _chain(50_000)  # 150,001 nodes: decoding and compiling them take seconds
        with tf.Session(target) as sess:
            # The decode alone passes the second on most machines; on a fast one (an Intel Xeon of family 6,
            # model 167) it may end within it, and the compile after it does not. (75,001 nodes were decoded
            # and compiled within the second once on a model 207.)
            with pytest.raises(errors.DeadlineExceededError,
                               match=r"(decoding|compiling) a graph of 150001 nodes took longer than the compile "
                                     r"deadline of 1 s \(--compile-timeout-s\)"):
                sess.run(y, {"x:0": np.ones(4, np.float32)})
    value = np.arange(4, dtype=np.float32)
    with tf.Graph().as_default():  # the killed compile process was replaced: the next large graph compiles
        x, y = _chain(40)
        with tf.Session(target) as sess:
            np.testing.assert_allclose(sess.run(y, {x: value}), _numpy_chain(value, 40), rtol=1e-5)
    with tf.Graph().as_default():  # and small graphs compile in the server as ever
        x = tf.placeholder(tf.float32, [3])
        with tf.Session(target) as sess:
            assert sess.run(tf.reduce_sum(x * 2.0), {x: [1.0, 2.0, 3.0]}) == 12.0


def test_a_large_graph_compiles_in_a_compile_process_while_other_tenants_runs_go_on(processes):
    server = Process([sys.executable, "-m", "graphexec", "serve", "--port", "0", "--log-level", "INFO"],
                     r"serving on (grpcs?://\S+)")
    processes.append(server)
    target = server.match.group(1)
    small_runs, stop = [], threading.Event()

    def other_tenant():
        with tf.Graph().as_default():
            a = tf.placeholder(tf.float32, [3])
            total = tf.reduce_sum(a * 2.0)
            with tf.Session(target) as sess:
                while not stop.is_set():
                    small_runs.append((time.monotonic(), float(sess.run(total, {a: [1.0, 2.0, 3.0]}))))

    runner = threading.Thread(target=other_tenant)
    runner.start()
    value = np.linspace(0.0, 1.0, 4, dtype=np.float32)
    with tf.Graph().as_default():
        x, y = _chain(3000)  # 9,001 nodes, above --compile-process-nodes (5000)
        with tf.Session(target) as sess:
            started = time.monotonic()
            result = sess.run(y, {x: value})
            finished = time.monotonic()
    stop.set()
    runner.join(timeout=30)
    np.testing.assert_allclose(result, _numpy_chain(value, 3000), rtol=1e-4)
    assert all(total == 12.0 for _, total in small_runs)
    assert any(started < at < finished for at, _ in small_runs)  # answered while the large graph compiled
    server.proc.kill()
    log = "".join(server.output) + server.proc.stdout.read()
    pids = {int(pid) for pid in re.findall(r"a graph of 9001 nodes in compile process (\d+)", log)}
    assert pids and server.pid not in pids, log[-2000:]  # decoded and compiled there, not in the server


def test_replicas_share_a_large_graph_checked_and_compiled_in_another_replicas_compile_process(
        redis_server, serve, worker, wait_for_workers):
    worker(redis_server.url)
    replicas = [serve("--redis", redis_server.url, "--compile-process-nodes", "1000") for _ in range(2)]
    for target in replicas:
        wait_for_workers(target, 1)
    value = np.linspace(0.0, 1.0, 4, dtype=np.float32)
    with tf.Graph().as_default():
        x, y = _chain(500)  # 1,501 nodes: decoded and compiled in compile processes
        with tf.Session(replicas[0]) as sess:
            np.testing.assert_allclose(sess.run(y, {x: value}), _numpy_chain(value, 500), rtol=1e-5)
        with tf.Session(replicas[1]) as sess:  # the segments and the plan come from Redis
            np.testing.assert_allclose(sess.run(y, {x: value}), _numpy_chain(value, 500), rtol=1e-5)
            np.testing.assert_allclose(sess.run(y, {x: value * 2}), _numpy_chain(value * 2, 500), rtol=1e-5)
        with tf.Session(replicas[1]) as sess:  # a signature not compiled yet: compiled there from Redis's segments
            np.testing.assert_allclose(sess.run(y * 3.0, {x: value}), _numpy_chain(value, 500) * 3, rtol=1e-5)


def test_a_compile_process_killed_while_idle_is_replaced_without_failing_the_next_request():
    graph = tf.Graph()
    with graph.as_default():
        _chain(10)
    nodes, seed, _, chain, _ = graph.snapshot()
    segment = spb.GraphSegment(node_count=len(nodes), chain=chain, seed=seed)
    segment.nodes.CopyFrom(convert.graph_to_proto(nodes))
    blob = convert.segment_to_bytes(segment)
    pool = CompilePool(1, 30.0)
    try:
        assert pool.check([blob], len(nodes), digest.CHAIN_START.hex(), chain.hex()) == 31
        os.kill(pool._slots[0].child.process.pid, signal.SIGKILL)  # as the OOM killer might
        pool._slots[0].child.process.wait()
        assert pool.check([blob], len(nodes), digest.CHAIN_START.hex(), chain.hex()) == 31
    finally:
        pool.close()
