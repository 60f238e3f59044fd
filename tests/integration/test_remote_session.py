"""tf.Session("grpc://...") against a real `graphexec serve` (no Redis): same numbers as in-process,
graph growth, content-addressed uploads, errors, metadata, streaming, health and reflection."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import graphexec as tf
from graphexec import digest, errors, ir
from graphexec.client.connection import Connection, ResponseAssembler
from graphexec.client.remote import RemoteSession
from graphexec.ops import registry
from graphexec.proto.v1 import graph_pb2, service_pb2 as spb
from graphexec.rpc import codec, convert

pytestmark = pytest.mark.timeout(120)
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run_example(path, env_extra):
    env = {**os.environ, **env_extra}
    result = subprocess.run([sys.executable, str(ROOT / path)], capture_output=True, text=True, env=env, timeout=90)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart_prints_the_same_in_process_and_remote(embedded):
    local = _run_example("examples/quickstart.py", {"GRAPHEXEC_TARGET": ""})
    remote = _run_example("examples/quickstart.py", {"GRAPHEXEC_TARGET": embedded})
    assert remote == local
    assert "[ 4  7 10]" in local


def test_plain_session_is_remote_with_graphexec_target(embedded, monkeypatch):
    monkeypatch.setenv("GRAPHEXEC_TARGET", embedded)
    with tf.Graph().as_default():
        total = tf.reduce_sum(tf.constant([1.0, 2.0, 3.0]))
        with tf.Session() as sess:
            assert isinstance(sess, RemoteSession)
            assert sess.run(total) == 6.0


def _train_linear_regression(target: str):
    """A TF1 training loop: placeholders, variables, global_step, GradientDescentOptimizer."""
    rng = np.random.default_rng(0)
    x_data = rng.normal(size=(256, 3)).astype(np.float32)
    y_data = x_data @ np.array([[1.5], [-2.0], [0.5]], np.float32) + 0.25
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(7)
        x = tf.placeholder(tf.float32, [None, 3])
        y = tf.placeholder(tf.float32, [None, 1])
        w = tf.Variable(tf.random_normal([3, 1], stddev=0.1), name="w")
        b = tf.Variable(tf.zeros([1]), name="b")
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y))
        step = tf.train.get_or_create_global_step()
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=step)
        init = tf.global_variables_initializer()
    losses = []
    with tf.Session(target, graph=graph) as sess:
        sess.run(init)
        for i in range(30):
            _, value = sess.run([train, loss], {x: x_data[i * 8 % 256:][:64], y: y_data[i * 8 % 256:][:64]})
            losses.append(value)
        weights, bias, global_step = sess.run([w, b, step])
    return np.array(losses), weights, bias, global_step


def test_tf1_training_gives_the_same_numbers(embedded):
    local = _train_linear_regression("")
    remote = _train_linear_regression(embedded)
    for a, b in zip(local, remote):
        np.testing.assert_array_equal(a, b)
    assert remote[3] == 30 and remote[0][-1] < remote[0][0] / 10


def test_digits_example_trains_to_the_same_accuracy(embedded, monkeypatch):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import train_digits
    finally:
        sys.path.pop(0)
    quiet = lambda *_: None  # noqa: E731
    local = train_digits.train("mlp", epochs=2, log=quiet)[0]
    monkeypatch.setenv("GRAPHEXEC_TARGET", embedded)
    remote = train_digits.train("mlp", epochs=2, log=quiet)[0]
    assert remote == local and local > 0.5


def _extend_requests(sess):
    """Spy on the session's ExtendSession calls: (nodes sent, base count) per call."""
    sent = []
    call = sess._connection.call

    def recording(method, data, *args, **kwargs):
        if method == "ExtendSession":
            segment = spb.ExtendSessionRequest.FromString(data).graph
            sent.append((len(segment.nodes.nodes) if segment.HasField("nodes") else None, segment.base_node_count))
        return call(method, data, *args, **kwargs)

    sess._connection.call = recording
    return sent


def test_growing_graph_sends_only_new_nodes(embedded):
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [3])
        y = x * 2.0
        with tf.Session(embedded) as sess:
            sent = _extend_requests(sess)
            np.testing.assert_array_equal(sess.run(y, {x: [1, 2, 3]}), [2, 4, 6])
            count = graph.version
            z = y + 1.0  # TF1 code grows the graph after the first run
            np.testing.assert_array_equal(sess.run(z, {x: [1, 2, 3]}), [3, 5, 7])
            np.testing.assert_array_equal(sess.run(y, {x: [0, 0, 1]}), [0, 0, 2])
    assert sent[0] == (count, 0)
    assert sent[1] == (graph.version - count, count)
    assert len(sent) == 2


def test_only_shapes_refined_by_set_shape_travel_and_the_server_keeps_them(embedded):
    """The server infers every node's shapes by its op's rules, as graph building did; shapes a
    program refined afterwards (set_shape) are the only ones sent, and the server holds feeds to them."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        x.set_shape([2, 3])
        y = tf.reduce_sum(x * 2.0, axis=1, name="y")
        with tf.Session(embedded) as sess:
            declared = {}
            call = sess._connection.call

            def recording(method, data, *args, **kwargs):
                if method == "ExtendSession":
                    for node in spb.ExtendSessionRequest.FromString(data).graph.nodes.nodes:
                        declared[node.name] = [list(s.dims) for s in node.output_shapes]
                return call(method, data, *args, **kwargs)

            sess._connection.call = recording
            np.testing.assert_array_equal(sess.run(y, {x: np.ones((2, 3), np.float32)}), [6, 6])
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"shape \[4, 3\].*shape \[2,3\]"):
                sess.run(y, {x: np.ones((4, 3), np.float32)})
    assert declared["x"] == [[2, 3]]
    assert declared["y"] == [] and len(declared) == graph.version and sum(map(len, declared.values())) == 1


def _chain_graph(length=64):
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [4], name="x")
        y = x
        for i in range(length):
            y = y * 1.01 if i % 2 else y + 0.5
    return graph, x, y


def test_second_client_with_the_same_graph_uploads_nothing(embedded):
    results = []
    for _ in range(2):
        graph, x, y = _chain_graph()
        with tf.Session(embedded, graph=graph) as sess:
            sent = _extend_requests(sess)
            metadata = tf.RunMetadata()
            results.append(sess.run(y, {x: np.ones(4, np.float32)}, run_metadata=metadata))
        results.append((sent, metadata.plan_cache_hit))
    first_sent, first_hit = results[1]
    second_sent, second_hit = results[3]
    # MakeCallable names the graph first: the first client then uploads it (unless an earlier test did),
    # the second sends no ExtendSession at all.
    assert first_sent == [(graph.version, 0)]
    assert second_sent == []
    assert second_hit
    np.testing.assert_array_equal(results[0], results[2])


def test_a_make_callable_naming_a_graph_the_server_lacks_makes_nothing(embedded):
    graph, _, y = _chain_graph(40)
    nodes, _, graph_digest, chain, _ = graph.snapshot()
    connection = Connection(embedded)
    handle = connection.message("CreateSession", spb.CreateSessionRequest(), spb.CreateSessionResponse).session_handle
    segment = spb.GraphSegment(node_count=len(nodes), chain=chain)
    request = spb.MakeCallableRequest(session_handle=handle, feeds=["x:0"], fetches=[y.name], graph=segment,
                                      graph_node_count=len(nodes), graph_digest=graph_digest)

    def make():
        return connection.message("MakeCallable", request, spb.MakeCallableResponse)

    assert make() == spb.MakeCallableResponse(graph_missing=True)
    request.graph.nodes.CopyFrom(convert.graph_to_proto(nodes))
    with pytest.raises(errors.InvalidArgumentError, match="without its nodes"):
        make()  # nodes go with ExtendSession, which counts them against the tenant's quota
    connection.message("ExtendSession", spb.ExtendSessionRequest(session_handle=handle, graph=request.graph),
                       spb.ExtendSessionResponse)
    request.graph.ClearField("nodes")
    made = make()
    assert not made.graph_missing and made.callable_handle and list(made.feed_indices) == [0]
    connection.close()


def test_errors_carry_the_op_and_the_users_line(embedded):
    with tf.Graph().as_default():
        a = tf.placeholder(tf.float32, [None, 3])
        b = tf.placeholder(tf.float32, [None, 4])
        product = tf.matmul(a, b); line = sys._getframe().f_lineno  # noqa: E702
        v = tf.Variable(1.0, name="never_initialized")
        with tf.Session(embedded) as sess:
            with pytest.raises(errors.InvalidArgumentError) as failure:
                sess.run(product, {a: np.ones((2, 3)), b: np.ones((2, 4))})
            assert "MatMul" in str(failure.value) and f"test_remote_session.py:{line}" in str(failure.value)
            with pytest.raises(errors.FailedPreconditionError, match="never_initialized"):
                sess.run(v)
            with pytest.raises(errors.InvalidArgumentError, match="must feed a value for placeholder"):
                sess.run(product)


def test_run_metadata_reports_cache_timings_devices_and_worker(embedded):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2])
        y = tf.exp(x) + 1.0
        with tf.Session(embedded) as sess:
            first, second = tf.RunMetadata(), tf.RunMetadata()
            options = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)
            sess.run(y, {x: [0, 1]}, options=options, run_metadata=first)
            sess.run(y, {x: [0, 1]}, options=options, run_metadata=second)
            devices = sess.list_devices()
    assert not first.plan_cache_hit and first.plan_source == "compiled"
    assert second.plan_cache_hit and second.plan_source == "memory"
    assert second.step_stats.node_stats and all(s.duration_micros >= 0 for s in second.step_stats.node_stats)
    assert set(second.devices.values()) == {"/cpu:0"} and second.worker and second.plan_text
    assert set(second.workers.values()) == {second.worker} and second.soft_placement == []
    assert [(d.name, d.device_type) for d in devices] == [("/cpu:0", "CPU")]


def test_stream_yields_results_in_order_and_raises_in_place(embedded):
    with tf.Graph().as_default():
        a = tf.placeholder(tf.float32, [None])
        b = tf.placeholder(tf.float32, [None])
        c = {"sum": a + b, "product": a * b}
        with tf.Session(embedded) as sess:
            feeds = ({a: np.full(3, i, np.float32), b: np.arange(3, dtype=np.float32)} for i in range(500))
            results = list(sess.stream(c, feeds, max_in_flight=8))
            assert [r["sum"][0] for r in results] == list(range(500))
            np.testing.assert_array_equal(results[7]["product"], [0, 7, 14])

            bad = [{a: [1.0], b: [2.0]}, {a: [1.0, 2.0], b: [1.0, 2.0, 3.0]}, {a: [3.0], b: [4.0]}]
            seen = []
            with pytest.raises(errors.InvalidArgumentError):
                for result in sess.stream(c["sum"], bad):
                    seen.append(result)
            assert len(seen) == 1 and seen[0][0] == 3.0
            assert sess.run(c["sum"], {a: [1.0], b: [1.0]})[0] == 2.0  # the session still works


def test_stream_batches_small_runs_around_large_feeds_and_fetches(embedded):
    with tf.Graph().as_default():
        a = tf.placeholder(tf.float32, [None])
        b = tf.placeholder(tf.float32, [None])
        total = a + b
        outer = tf.reshape(a, [-1, 1]) + tf.reshape(b, [1, -1])  # size unknown to the client
        big = codec.CHUNK_BYTES // 4 + 10  # float32 elements above the chunk size: sent in parts
        sizes = [3, 3, big, 3, big, 3, 1] * 3
        feeds = [{a: np.full(n, i, np.float32), b: np.ones(n, np.float32)} for i, n in enumerate(sizes)]
        with tf.Session(embedded) as sess:
            for result, feed in zip(sess.stream(total, feeds, max_in_flight=4), feeds, strict=True):
                np.testing.assert_array_equal(result, feed[a] + feed[b])
            wide = [{a: np.full(n, i, np.float32), b: np.arange(n, dtype=np.float32)} for i, n in
                    enumerate([2, 600, 2, 2, 600])]  # 600 x 600 fetches come back in parts, between batches
            for result, feed in zip(sess.stream(outer, wide), wide, strict=True):
                np.testing.assert_array_equal(result, feed[a][:, None] + feed[b][None, :])


def test_a_batch_request_is_answered_in_order_with_large_fetches_in_parts(embedded):
    with tf.Graph().as_default():
        a = tf.placeholder(tf.float32, [None], name="a")
        b = tf.placeholder(tf.float32, [None], name="b")
        tf.add(a, b, name="c")
        with tf.Session(embedded) as sess:
            made = sess._callable(["a:0", "b:0"], ["c:0"], [])
            header = spb.RunRequest(session_handle=sess._handle, callable_handle=made.handle).SerializeToString()
            big = np.ones(codec.CHUNK_BYTES // 4 + 10, np.float32)  # inline in the batch; answered in parts
            runs = [([1.0], [2.0]), ([1.0, 2.0], [1.0, 2.0, 3.0]), (big, big), ([3.0], [4.0])]  # the second fails
            batch = b"".join(codec.message_field(spb.RunRequest, "batch", codec.encode_tensor_message(
                header, "feeds", [np.asarray(x, np.float32), np.asarray(y, np.float32)], message_class=spb.RunRequest))
                for x, y in runs)
            envelope = spb.RunRequest(callable_handle=made.handle, batch=[spb.RunRequest()]).SerializeToString()
            with grpc.insecure_channel(embedded.removeprefix("grpc://")) as channel:
                run = channel.stream_stream("/graphexec.v1.GraphExecService/Run")
                replies = list(run(iter([batch, envelope]), timeout=10))
    assert len(spb.RunResponse.FromString(replies[0]).batch) == 2  # the runs before the large answer
    assembler = ResponseAssembler()
    answers = [answer for reply in replies for answer in assembler.answers(reply)]
    assert len(answers) == 5
    assert answers[0][1][0].tolist() == [3.0] and answers[3][1][0].tolist() == [7.0]
    np.testing.assert_array_equal(answers[2][1][0], big + big)
    assert isinstance(answers[1], errors.InvalidArgumentError)
    assert isinstance(answers[4], errors.InvalidArgumentError)  # a batch with other fields set: a clean error


def test_health_and_reflection_are_served(embedded):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(embedded.removeprefix("grpc://")) as channel:
        check = health_pb2.HealthCheckRequest(service="graphexec.v1.GraphExecService")
        health = health_pb2_grpc.HealthStub(channel).Check(check, timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {"graphexec.v1.GraphExecService", "grpc.health.v1.Health"} <= names


def test_variables_persist_across_sessions_until_reset(embedded):
    def build():
        graph = tf.Graph()
        with graph.as_default():
            counter = tf.Variable(0, name="persistent_counter")
            bump = counter.assign_add(1)
        return graph, counter, bump, counter.initializer

    graph, counter, bump, init = build()
    config = tf.ConfigProto(container="test_persist")
    with tf.Session(embedded, graph=graph, config=config) as sess:
        sess.run(init)
        sess.run(bump)
        sess.run(bump)
    graph, counter, bump, init = build()
    with tf.Session(embedded, graph=graph, config=config) as sess:
        assert sess.run(counter) == 2  # a new session continues from the container's values
    RemoteSession.reset(embedded, ["test_persist"])
    with tf.Session(embedded, graph=graph, config=config) as sess:
        with pytest.raises(errors.FailedPreconditionError):
            sess.run(counter)


def test_a_wrong_attr_type_on_the_wire_is_invalid_argument_naming_the_node(embedded):
    """A GraphDef node Sum whose `axis` is a string: INVALID_ARGUMENT naming node, op and (once Sum
    declares its attrs) the attr and its expected type; the server keeps serving."""
    graph = graph_pb2.GraphDef(format_version=convert.GRAPH_FORMAT_VERSION)
    convert.node_to_proto(ir.Node("c", "Const", attrs={"value": np.ones(3, np.float32), "dtype": tf.float32}),
                          graph.nodes.add())
    node = graph.nodes.add(name="s", op="Sum", inputs=["c:0"])
    convert.attr_to_proto("zero", node.attrs["axis"])
    convert.attr_to_proto(False, node.attrs["keepdims"])
    # With its true digest: a wrong one is rejected first, before the nodes' types are inferred.
    chain = digest.chain(digest.CHAIN_START, [
        ir.Node("c", "Const", attrs={"value": np.ones(3, np.float32), "dtype": tf.float32}),
        ir.Node("s", "Sum", inputs=("c:0",), attrs={"axis": "zero", "keepdims": False})])
    segment = spb.GraphSegment(node_count=2, chain=chain, nodes=graph)
    with grpc.insecure_channel(embedded.removeprefix("grpc://")) as channel:
        create = channel.unary_unary("/graphexec.v1.GraphExecService/CreateSession")
        with pytest.raises(grpc.RpcError) as failure:
            create(spb.CreateSessionRequest(graph=segment).SerializeToString(), timeout=10)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = failure.value.details()
        assert "node 's' (Sum" in details
        axis = (registry.get("Sum").attrs or {}).get("axis")
        if axis is not None:
            assert "'axis'" in details and axis.describe() in details, details
        create(spb.CreateSessionRequest().SerializeToString(), timeout=10)  # still serving
