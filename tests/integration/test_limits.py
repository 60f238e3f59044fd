"""The server's limits (graphexec/server/limits.py) against real `graphexec serve` processes: each attack
gets its documented status at once, and the server keeps serving everyone else."""
from __future__ import annotations

import queue
import sys
import threading

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import graphexec as tf
from graphexec import errors
from graphexec.client.connection import parse_target
from graphexec.proto.v1 import graph_pb2
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import convert, methods

from conftest import Process, deadline_model  # tests/integration is on sys.path (rootdir-relative conftest)

pytestmark = pytest.mark.timeout(240)
READINESS = "graphexec.v1.GraphExecService"


def _channel(target: str, index: int = 0) -> grpc.Channel:
    # A distinct channel argument gives each channel a connection of its own.
    return grpc.insecure_channel(parse_target(target)[0], options=[("graphexec.test.connection", index)])


def _health(target: str, service: str = "") -> int:
    with _channel(target, -1) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


class IdleStream:
    """A Run stream that sent one (malformed) request, got its answer, and now sends nothing."""

    def __init__(self, channel):
        self.requests = queue.Queue()
        self.requests.put(b"\xff")
        self.call = methods.client_calls(channel, methods.GRAPH_EXEC_SERVICE)["Run"](iter(self.requests.get, None))

    def first_answer(self) -> spb.RunResponse:
        return spb.RunResponse.FromString(next(self.call))

    def close(self):
        self.requests.put(None)
        self.call.cancel()


def _open_idle_streams(target: str, count: int, per_channel: int = 250):
    channels = [_channel(target, i) for i in range((count + per_channel - 1) // per_channel)]
    streams = [IdleStream(channels[i // per_channel]) for i in range(count)]
    for stream in streams:  # each answered its request: the server holds every one of them open
        assert stream.first_answer().status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    return channels, streams


def _small_run(target: str) -> float:
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [3])
        y = tf.reduce_sum(x * 2.0)
        with tf.Session(target) as sess:
            return float(sess.run(y, {x: [1.0, 2.0, 3.0]}))


def test_health_and_sessions_answer_with_1000_idle_streams_open_and_more_are_refused(serve):
    target = serve("--max-streams", "1000")
    channels, streams = _open_idle_streams(target, 1000)
    try:
        assert _health(target) == health_pb2.HealthCheckResponse.SERVING
        assert _health(target, READINESS) == health_pb2.HealthCheckResponse.SERVING
        assert _small_run(target) == 12.0  # CreateSession, ExtendSession, MakeCallable, RunCallable
        extra = IdleStream(channels[0])
        with pytest.raises(grpc.RpcError) as refused:
            extra.first_answer()
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-streams" in refused.value.details()
    finally:
        for stream in streams:
            stream.close()
        for channel in channels:
            channel.close()
    assert _small_run(target) == 12.0


def test_an_idle_stream_is_closed_after_the_idle_timeout(serve):
    target = serve("--stream-idle-timeout", "0.5")
    with _channel(target) as channel:
        stream = IdleStream(channel)
        assert stream.first_answer().status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        with pytest.raises(grpc.RpcError) as closed:
            next(stream.call)  # waits until the server closes it
        assert closed.value.code() == grpc.StatusCode.CANCELLED
    assert _small_run(target) == 12.0


def test_runs_beyond_the_threads_and_queue_are_refused_at_once(serve):
    target = serve("--threads", "1", "--queue-depth", "0")
    graph, x, counter, long_update, _, value = deadline_model()
    outcome = {}
    with tf.Session(target, graph=graph) as long_session:
        long_session.run(counter.initializer)
        started = threading.Event()

        def run_long():
            started.set()
            outcome["long"] = long_session.run(long_update, {x: value})

        runner = threading.Thread(target=run_long)
        runner.start()
        started.wait()
        refused = 0
        with tf.Graph().as_default():
            a = tf.placeholder(tf.float32, [2])
            b = a + 1.0
            with tf.Session(target) as sess:
                while runner.is_alive():
                    try:
                        sess.run(b, {a: [1.0, 2.0]})
                    except errors.ResourceExhaustedError as exc:
                        assert "--queue-depth" in exc.message
                        refused += 1
                        break
        runner.join()
    assert refused == 1 and outcome["long"] == 1
    assert _small_run(target) == 12.0


def test_a_message_above_the_limit_is_resource_exhausted(serve):
    target = serve("--max-message-bytes", "1MiB")
    with _channel(target) as channel:
        call = methods.client_calls(channel, methods.GRAPH_EXEC_SERVICE)["CreateSession"]
        with pytest.raises(grpc.RpcError) as refused:
            call(b"\x00" * (2 << 20), timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with tf.Graph().as_default():  # feeds above it travel in parts on the Run stream
        x = tf.placeholder(tf.float32, [None])
        y = tf.reduce_sum(x)
        with tf.Session(target) as sess:
            assert sess.run(y, {x: np.ones(3 << 20, np.float32)}) == 3 << 20


def test_long_container_names_and_large_graphs_are_invalid_argument(serve):
    target = serve("--max-graph-nodes", "500", "--max-string-bytes", "1000")
    with tf.Graph().as_default():
        with pytest.raises(errors.InvalidArgumentError, match="container name is 4194304 bytes.*--max-string-bytes"):
            with tf.Session(target, config=tf.ConfigProto(container="c" * (4 << 20))) as sess:
                sess.list_devices()
        total = tf.constant(0.0)
        for i in range(600):
            total = total + float(i)
        with tf.Session(target) as sess:
            with pytest.raises(errors.InvalidArgumentError, match="graph of 1201 nodes.*limit of 500"):
                sess.run(total)
    assert _small_run(target) == 12.0


def test_a_plan_above_the_run_memory_budget_is_refused_before_allocating(serve):
    target = serve("--run-memory-bytes", "1GiB")
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [1])
        big = tf.tile(x, [400_000_000])  # 1.6 GB, known from static shapes
        total = tf.reduce_sum(big)
        with tf.Session(target) as sess:
            with pytest.raises(errors.ResourceExhaustedError, match=r"\(Tile\): its output alone needs 1600000000 "
                                                                    r"bytes.*budget of 1073741824"):
                sess.run(total, {x: [1.0]})
        small = tf.reduce_sum(tf.tile(x, [1000]))
        with tf.Session(target) as sess:
            assert sess.run(small, {x: [2.0]}) == 2000.0


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_embedded_serve_frees_unused_uploaded_graphs(processes):
    process = Process([sys.executable, "-m", "graphexec", "serve", "--port", "0", "--cache-bytes", "64MiB"],
                      r"serving on (grpcs?://\S+)")
    processes.append(process)
    target = process.match.group(1)
    rss = []
    for i in range(10):  # ten graphs of a 32 MiB constant each, one session each, closed after one run
        with tf.Graph().as_default():
            weights = tf.constant(np.full(8 << 20, float(i), np.float32))
            total = tf.reduce_sum(weights[:4])
            with tf.Session(target) as sess:
                assert sess.run(total) == 4.0 * i
        rss.append(_rss_bytes(process.pid))
    # Unbounded, each graph stayed (upload, decoded graph, plan, loaded plan: ~4 x 32 MiB apiece).
    assert rss[-1] - rss[2] < 160 << 20, [r >> 20 for r in rss]
    with tf.Graph().as_default():  # a session whose graph was dropped gets it again from its client
        x = tf.placeholder(tf.float32, [2])
        with tf.Session(target) as sess:
            assert sess.run(tf.reduce_sum(x), {x: [1.0, 2.0]}) == 3.0



def test_a_graph_with_a_wrong_digest_is_rejected_before_its_types_are_inferred(serve):
    """Its nodes are malformed too (an unknown op): the digest is what the answer names, so the check
    came first (and graphs above --max-graph-nodes are refused before either)."""
    target = serve()
    graph = graph_pb2.GraphDef(format_version=convert.GRAPH_FORMAT_VERSION)
    for i in range(1000):
        graph.nodes.add(name=f"n{i}", op="NoSuchOp")
    segment = spb.GraphSegment(node_count=1000, chain=b"\1" * 32, nodes=graph)
    with _channel(target) as channel:
        create = methods.client_calls(channel, methods.GRAPH_EXEC_SERVICE)["CreateSession"]
        with pytest.raises(grpc.RpcError) as failure:
            create(spb.CreateSessionRequest(graph=segment).SerializeToString(), timeout=30)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not the claimed 0101010101010101" in failure.value.details()
        segment.node_count = 300_000
        with pytest.raises(grpc.RpcError) as failure:
            create(spb.CreateSessionRequest(graph=segment).SerializeToString(), timeout=30)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "graph of 300000 nodes is above the limit of 200000" in failure.value.details()
    assert _small_run(target) == 12.0
