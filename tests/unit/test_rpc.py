"""graphexec.rpc: tensors, tensor-carrying messages, attributes, graphs and plans survive the wire."""
from __future__ import annotations

import ast
import filecmp
import pathlib
import subprocess
import sys

import grpc
import numpy as np
import pytest

import graphexec as tf
from graphexec import digest, dtypes, errors, ir
from graphexec.compiler.pipeline import compile_program
from graphexec.framework import merge_shapes
from graphexec.ir import ShapeAttr
from graphexec.ops import registry
from graphexec.proto.v1 import graph_pb2, service_pb2 as spb
from graphexec.rpc import codec, convert, methods, status
from graphexec.rpc.tensors import checked_array, dtype_enum, tensor_from_proto, tensor_to_proto
from graphexec.rpc.graph_types import GraphTypes
from graphexec.runtime.context import ExecContext
from graphexec.runtime.executor import LoadedPlan
from graphexec.server.servicer import GraphExecServicer
from graphexec.server.worker_service import WorkerServicer
import tf1_programs

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("dtype", [d.np for d in dtypes.ALL if not d.is_string])
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 4), (2, 3, 4)])
def test_tensor_round_trip(dtype, shape):
    value = (np.arange(int(np.prod(shape))) % 7).astype(dtype).reshape(shape)
    back = tensor_from_proto(graph_pb2.Tensor.FromString(tensor_to_proto(value).SerializeToString()))
    assert back.dtype == value.dtype and back.shape == value.shape
    np.testing.assert_array_equal(back, value)


def test_big_endian_and_strided_arrays_travel_as_little_endian_values():
    value = np.arange(12, dtype=">i4").reshape(3, 4).T
    back = tensor_from_proto(tensor_to_proto(value))
    np.testing.assert_array_equal(back, value)


def test_malformed_tensors_are_invalid_argument():
    with pytest.raises(errors.InvalidArgumentError, match="needs 12 bytes"):
        tensor_from_proto(graph_pb2.Tensor(dtype=dtype_enum(tf.float32), shape=[3], content=b"\0" * 8))
    with pytest.raises(errors.InvalidArgumentError, match="dtype"):
        tensor_from_proto(graph_pb2.Tensor(shape=[1], content=b"\0"))


@pytest.mark.parametrize("size", [3, 100_000])  # protobuf-parsed and hand-walked paths
def test_tensor_messages_decode_as_views_and_parse_as_plain_protobuf(size):
    values = [np.arange(size, dtype=np.float32), np.array(True), np.zeros((0, 2), np.int64),
              np.arange(6, dtype=np.float64).reshape(2, 3)]
    request = spb.RunCallableRequest(session_handle="s", callable_handle="c", request_id=9)
    data = codec.encode_tensor_message(request, "feeds", values)
    message, arrays, _ = codec.decode_tensor_message(spb.RunCallableRequest, data, "feeds")
    assert (message.session_handle, message.callable_handle, message.request_id) == ("s", "c", 9)
    for value, array in zip(values, arrays):
        assert array.dtype == value.dtype and array.shape == value.shape and not array.flags.writeable
        assert array.flags.aligned  # numpy gives BLAS only aligned arrays (same bits as in-process)
        np.testing.assert_array_equal(array, value)
    plain = spb.RunCallableRequest.FromString(data)  # any protobuf reader sees the same message
    assert len(plain.feeds) == 4 and tensor_from_proto(plain.feeds[3]).tolist() == values[3].tolist()
    if size > codec.WALK_THRESHOLD:
        assert np.shares_memory(arrays[0], np.frombuffer(data, np.uint8))  # no copy of the content


def _viewed_in_place(array, data) -> bool:
    """Whether a decoded array is a view of the received bytes, starting on an 8-byte boundary."""
    return np.shares_memory(array, np.frombuffer(data, np.uint8)) and array.ctypes.data % 8 == 0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int64, np.uint8])
def test_the_encoder_places_contents_on_8_byte_boundaries_whatever_comes_before_them(dtype):
    rng = np.random.default_rng(0)
    for handle_length in range(16):  # every remainder of the header length, twice
        values = [rng.normal(size=n).astype(dtype) for n in (40_000, 3, 1000, 17, 200)]
        request = spb.RunCallableRequest(session_handle="s" * handle_length, callable_handle="c", request_id=9)
        data = codec.encode_tensor_message(request, "feeds", values)
        message, arrays, _ = codec.decode_tensor_message(spb.RunCallableRequest, data, "feeds")
        assert message.session_handle == "s" * handle_length
        for value, array in zip(values, arrays):
            np.testing.assert_array_equal(array, value)
            assert _viewed_in_place(array, data) or value.nbytes < codec.ALIGN_FROM_BYTES
        plain = spb.RunCallableRequest.FromString(data)  # the padding is a field like any other to protobuf
        assert [tensor_from_proto(t).tolist() for t in plain.feeds] == [v.tolist() for v in values]


def test_messages_of_other_writers_without_padding_decode_to_aligned_arrays():
    value = np.arange(20_000, dtype=np.float64)
    for handle_length in range(8):  # protobuf's own serializer: content wherever the header puts it
        request = spb.RunCallableRequest(session_handle="s" * handle_length)
        tensor_to_proto(value, request.feeds.add())
        data = request.SerializeToString()
        _, (array,), _ = codec.decode_tensor_message(spb.RunCallableRequest, data, "feeds")
        assert array.flags.aligned and not array.flags.writeable
        np.testing.assert_array_equal(array, value)


def test_misaligned_content_decodes_to_an_aligned_copy_with_the_same_matmul_bits():
    value = np.random.default_rng(0).normal(size=(64, 33)).astype(np.float32)
    buffer = b"\0" + value.tobytes()  # content one byte past the start: misaligned for float32
    array = checked_array(buffer, dtype_enum(tf.float32), value.shape, 1, value.nbytes)
    assert array.flags.aligned and not array.flags.writeable
    weights = np.random.default_rng(1).normal(size=(33, 7)).astype(np.float32)
    assert (array @ weights).tobytes() == (value @ weights).tobytes()


def test_shells_and_raw_bytes_of_parted_tensors():
    shells = {0: (dtype_enum(tf.float32), (1000, 1000))}
    data = codec.encode_tensor_message(spb.RunRequest(), "feeds", [None], shells=shells, raw_field="part_data",
                                       raw=b"abc")
    _, tensors, raw = codec.decode_tensor_message(spb.RunRequest, data, "feeds", "part_data")
    assert tensors == [(dtype_enum(tf.float32), (1000, 1000))] and bytes(raw) == b"abc"


def _run_request(request_id: int, feeds, handle: str = "s1", timeout_ms: int = 0) -> bytes:
    """A RunCallableRequest as the Python client writes it (header, request id, then the feeds)."""
    header = spb.RunCallableRequest(session_handle=handle, callable_handle="c1",
                                    options=spb.RunOptions(timeout_ms=timeout_ms)).SerializeToString()
    return codec.encode_tensor_message(header + codec.varint_field(spb.RunCallableRequest, "request_id", request_id),
                                       "feeds", feeds, message_class=spb.RunCallableRequest)


@pytest.mark.parametrize("as_view", [False, True], ids=["bytes", "memoryview"])
def test_a_repeated_layout_decodes_as_a_full_parse_would(as_view):
    """Bytes (the batching thread's copies) and memoryviews (the direct link's frames and shared memory);
    small requests (parsed by protobuf) and large ones (walked)."""
    decoder = codec.RepeatDecoder(spb.RunCallableRequest, "feeds", "request_id")
    rng = np.random.default_rng(0)
    requests = [(rid, [rng.normal(size=(1, 784)).astype(np.float32), np.arange(3, dtype=np.int64) + rid], "s1", 0)
                for rid in (5, 6, 7, 300, 301, 70_000)]  # request ids of 1, 2 and 3 bytes
    requests += [(8, [np.zeros((2, 784), np.float32), np.arange(3)], "s1", 0),  # another shape
                 (9, [np.ones((1, 784), np.float32), np.arange(3)], "s2", 0),  # another session
                 (10, [np.ones((1, 784), np.float32), np.arange(3)], "s2", 250),  # another deadline
                 (11, [np.full((1, 784), 2, np.float32), np.arange(3)], "s2", 250)]
    requests += [(rid, [rng.normal(size=(128, 784)).astype(np.float32), np.arange(3)], "s2", 250)
                 for rid in (12, 13)]  # 401 KB: walked, not parsed
    fast = 0
    for rid, feeds, handle, timeout_ms in requests:
        data = _run_request(rid, feeds, handle, timeout_ms)
        assert (len(data) >= codec.WALK_THRESHOLD) == (rid in (12, 13))
        if as_view:
            data = memoryview(data)
        full, full_arrays, _ = codec.decode_tensor_message(spb.RunCallableRequest, data, "feeds")
        parsed_before = decoder._template
        message, arrays, request_id = decoder.decode(data)
        fast += decoder._template is parsed_before
        assert request_id == rid == full.request_id
        assert (message.session_handle, message.options.timeout_ms) == (handle, timeout_ms) == (
            full.session_handle, full.options.timeout_ms)
        for got, want, sent in zip(arrays, full_arrays, feeds):
            assert got.dtype == want.dtype == sent.dtype and got.flags.aligned and not got.flags.writeable
            np.testing.assert_array_equal(got, sent)
    assert fast == 5  # 6, 7, 301 (as long as 300), 11 and 13 read from the template; the others parsed


def test_a_repeated_layout_with_a_broken_or_other_field_is_parsed_in_full():
    decoder = codec.RepeatDecoder(spb.RunCallableRequest, "feeds", "request_id")
    x = np.ones((1, 8), np.float32)
    data = _run_request(300, [x])
    decoder.decode(data)
    at = data.index(codec.varint(300))
    broken = data[:at + 1] + b"\x80" + data[at + 2:]  # the id's last byte says "more follows"
    with pytest.raises(errors.InvalidArgumentError):
        decoder.decode(broken)
    other = data[:at] + codec.varint(301) + data[at + 2:]
    assert decoder.decode(other)[2] == 301
    strings = codec.encode_tensor_message(spb.RunCallableRequest(request_id=1), "feeds",
                                          [np.array([b"ab", b"c"], dtype=object)])
    for _ in range(2):  # a string tensor has no fixed layout: parsed every time
        message, (array,), request_id = decoder.decode(strings)
        assert request_id == 1 and list(array) == [b"ab", b"c"]


def test_a_repeated_feed_layout_encodes_as_a_full_encoding_would():
    head = spb.RunCallableRequest(session_handle="s1", callable_handle="c1").SerializeToString()
    head += codec.varint_field(spb.RunCallableRequest, "request_id", 0)[:-1]  # the id's key, its value apart
    encoder = codec.RepeatEncoder(spb.RunCallableRequest, "feeds", head)
    rng = np.random.default_rng(1)
    row = rng.normal(size=(1, 784)).astype(np.float32)
    big_endian = np.arange(20, dtype=">f4")
    runs = [(5, [row, np.arange(3, dtype=np.int64)]), (6, [row + 1, np.arange(3, dtype=np.int64) + 6]),
            (300, [row, np.arange(3, dtype=np.int64)]),  # an id one byte longer: the padding moves
            (301, [np.zeros((2, 784), np.float32), np.arange(3)]),  # another shape
            (302, [np.zeros((0, 784), np.float32), np.arange(3)]),  # an empty feed
            (303, [np.ones((4, 784), np.float32)[::2], np.arange(3)]),  # not contiguous
            (304, [big_endian]), (305, [big_endian]),  # another byte order: never sent as its own bytes
            (306, [np.array([b"ab", b"c"], dtype=object)]), (307, [np.array([b"abc"], dtype=object)])]
    learned = 0
    for request_id, feeds in runs:
        before = encoder._layout
        data = b"".join(encoder.pieces(request_id, feeds))
        learned += before is not None and encoder._layout is before
        want = codec.encode_tensor_message(head + codec.varint(request_id), "feeds", feeds,
                                           message_class=spb.RunCallableRequest)
        assert data == want, request_id
        message, arrays, _ = codec.decode_tensor_message(spb.RunCallableRequest, data, "feeds")
        assert message.request_id == request_id and len(arrays) == len(feeds)
        for got, sent in zip(arrays, feeds):
            np.testing.assert_array_equal(got, sent)
    assert learned == 1  # only 6 repeats 5's layout; the others are new, or cannot be one
    for request_id in (16_382, 16_383, 16_384, 16_385, 2**62 + 127, 2**62 + 128, 2**63 - 1):  # varints' high parts
        assert b"".join(encoder.pieces(request_id, [row])) == codec.encode_tensor_message(
            head + codec.varint(request_id), "feeds", [row], message_class=spb.RunCallableRequest), request_id


def test_garbage_is_invalid_argument_not_a_crash():
    for data in (b"\xff" * 40, b"\x1a\xff\xff\xff\xff\x0f", b"\x1a\x05\x08", bytes(range(256)) * 200):
        with pytest.raises(errors.InvalidArgumentError):
            codec.decode_tensor_message(spb.RunCallableRequest, data, "feeds")


def test_a_stored_segments_node_count_is_read_from_its_head():
    graph = tf.Graph()
    with graph.as_default():
        tf.placeholder(tf.float32, [3], name="x") * 2.0
    nodes, _, _, chain, _ = graph.snapshot()
    segment = spb.GraphSegment(base_node_count=1, base_chain=b"\2" * 32, node_count=len(nodes), chain=chain, seed=7)
    segment.nodes.CopyFrom(convert.graph_to_proto(nodes[1:]))
    blob = convert.segment_to_bytes(segment)
    assert len(blob) > convert.SEGMENT_HEAD_BYTES
    assert convert.segment_node_count(blob[:convert.SEGMENT_HEAD_BYTES]) == len(nodes)
    assert convert.segment_node_count(blob[:20]) is None  # cut inside the base chain, before the count
    # Protobuf may write fields in any order: with the nodes first, the head does not say (the whole segment does).
    nodes_first = (spb.GraphSegment(nodes=segment.nodes).SerializeToString()
                   + spb.GraphSegment(node_count=len(nodes), chain=chain).SerializeToString())
    assert convert.segment_node_count(nodes_first[:convert.SEGMENT_HEAD_BYTES]) is None
    assert convert.segment_from_bytes(nodes_first).node_count == len(nodes)


ATTRS = [None, True, False, 0, -7, 2**40, 0.5, float("inf"), "same", "", tf.float16, tf.bool,
         ShapeAttr(None), ShapeAttr([]), ShapeAttr([None, 3]), np.arange(4, dtype=np.int16).reshape(2, 2),
         (), (1, 2, 3), (0.5, 1.0), ("a", "b"), ((1, 1), (2, 2)), (True, False), (1, 0.5, "x", None)]


@pytest.mark.parametrize("value", ATTRS, ids=repr)
def test_attribute_round_trip_is_exact(value):
    back = convert.attr_from_proto(graph_pb2.AttrValue.FromString(convert.attr_to_proto(value, graph_pb2.AttrValue())
                                                               .SerializeToString()))
    assert digest.canonical_attr(back) == digest.canonical_attr(value)
    assert type(back) is type(value) or isinstance(value, list)


def _sample_graph():
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(11)
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        w = tf.Variable(tf.random_normal([4, 3], stddev=0.1), name="w")
        logits = tf.matmul(x, w)
        probabilities = tf.nn.softmax(logits)
        loss = tf.reduce_mean(tf.square(logits - 1.0))
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        reshaped = tf.reshape(x, tf.stack([tf.shape(x)[0], 2, 2]))
        padded = tf.pad(x, [[1, 0], [0, 2]])
        sliced = x[:, 1:3]
        with tf.device("/device:GPU:0"):
            on_gpu = tf.exp(probabilities) * 2
        tf.group(train, reshaped, padded, sliced, on_gpu, name="everything")
    return graph


def test_graph_round_trip_is_lossless_and_retyped_by_the_server():
    graph = _sample_graph()
    nodes = graph.nodes()
    data = convert.graph_to_proto(nodes, graph.seed).SerializeToString()
    back = convert.nodes_from_proto(graph_pb2.GraphDef.FromString(data), GraphTypes())
    assert [digest.node_bytes(n) for n in back] == [digest.node_bytes(n) for n in nodes]
    assert [n.outputs for n in back] == [n.outputs for n in nodes]  # re-inferred, not sent
    assert digest.graph_digest(back, graph.seed) == graph.digest()


def _control_flow_graph():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        late = tf.reshape(x, [-1])  # made before the refinement below: the client keeps [None] for it
        x.set_shape([2, 3])
        i, total = tf.while_loop(lambda i, t: i < 4, lambda i, t: (i + 1, t + tf.reduce_sum(x)),
                                 [tf.constant(0), tf.constant(0.0)])
        tf.cond(total > 1.0, lambda: late * 2.0, lambda: late - 1.0, name="branch")
        tf.concat([x, tf.ones_like(x)], axis=0, name="joined")
    return graph


def _program_graph(name):
    graph = tf.Graph()
    with graph.as_default():
        tf1_programs.PROGRAMS[name](tf)
    return graph


@pytest.mark.parametrize("build", [_sample_graph, _control_flow_graph] + [
    (lambda name=name: _program_graph(name)) for name in sorted(tf1_programs.PROGRAMS)])
def test_without_declared_shapes_the_receiver_infers_what_graph_building_did(build):
    """Only set_shape-refined ops declare their output shapes (graph_to_proto's `declared`): every other
    node's types, re-inferred by the receiver from its op's rules, must be the ones the client has."""
    graph = build()
    nodes, seed, _, _, refined = graph.snapshot()
    message = convert.graph_to_proto(nodes, seed, declared=refined)
    assert sum(len(n.output_shapes) > 0 for n in message.nodes) == len(refined)
    back = convert.nodes_from_proto(graph_pb2.GraphDef.FromString(message.SerializeToString()), GraphTypes())
    for sent, received in zip(nodes, back):
        for mine, theirs in zip(sent.outputs, received.outputs):
            assert theirs.dtype == mine.dtype, sent.name
            # equal, or more precise where an input was refined after this node was made (`late` above)
            assert merge_shapes(mine.shape, theirs.shape, sent.name) == theirs.shape, sent.name
    assert [n.name for n in back] == [n.name for n in nodes]


def test_repeated_nodes_share_inference_but_input_values_and_attrs_keep_them_apart():
    """The receiver keeps inferred outputs per (op, input types and values, attrs): nodes alike but for
    a shape given as a constant's value, or an attr, must still get their own types."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [6], name="x")
        shapes = [[2, 3], [3, 2], [2, 3], [6, 1], [3, 2]]
        for i, shape in enumerate(shapes):
            tf.reshape(x, shape, name=f"r{i}")
        tf.reduce_sum(tf.reshape(x, [2, 3]), axis=0, name="sum0")
        tf.reduce_sum(tf.reshape(x, [2, 3]), axis=1, name="sum1")
        tf.reduce_sum(tf.reshape(x, [2, 3]), axis=1, keepdims=True, name="kept")
        tf.cast(x, tf.int32, name="as_int")
        tf.cast(x, tf.float64, name="as_double")
    nodes = graph.nodes()
    message = convert.graph_to_proto(nodes, declared=frozenset())
    back = {n.name: n for n in convert.nodes_from_proto(message, GraphTypes())}
    assert [back[f"r{i}"].outputs[0].shape for i in range(len(shapes))] == [tuple(s) for s in shapes]
    assert [back[n].outputs[0].shape for n in ("sum0", "sum1", "kept")] == [(3,), (2,), (2, 1)]
    assert [back[n].outputs[0].dtype for n in ("as_int", "as_double")] == [tf.int32, tf.float64]
    assert all(back[n.name].outputs == n.outputs for n in nodes)


def test_graph_digest_is_the_same_in_another_process():
    script = ("import sys; sys.path.insert(0, %r); from test_rpc import _sample_graph; print(_sample_graph().digest())"
              % str(pathlib.Path(__file__).parent))
    others = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120,
                             env={"PYTHONHASHSEED": str(seed), "PATH": ""}).stdout.strip() for seed in (1, 2)}
    assert others == {_sample_graph().digest()}


def _bad_node(**changes):
    graph = graph_pb2.GraphDef(format_version=1)
    convert.node_to_proto(ir.Node("c", "Const", attrs={"value": np.float32(1.0) * np.ones(2, np.float32),
                                                    "dtype": tf.float32}, source="user.py:3"), graph.nodes.add())
    node = graph.nodes.add(name="n", op="Neg", inputs=["c:0"])
    node.source.file, node.source.line = "user.py", 7
    for key, value in changes.items():
        if key == "attrs":
            for name, attr in value.items():
                convert.attr_to_proto(attr, node.attrs[name])
        else:
            field = getattr(node, key)
            if isinstance(value, list):
                del field[:]
                field.extend(value)
            else:
                setattr(node, key, value)
    return graph


@pytest.mark.parametrize("changes, message", [
    ({"op": "NoSuchOp"}, "unknown op 'NoSuchOp'"),
    ({"op": "Fused"}, "unknown op 'Fused'"),
    ({"inputs": ["missing:0"]}, "input 'missing:0' is not an output of an earlier node"),
    ({"inputs": ["c:3"]}, "input 'c:3'"),
    ({"name": "c"}, "unique"),
    ({"control_inputs": ["later"]}, "control input 'later'"),
    ({"op": "Reshape", "inputs": ["c:0", "c:0"]}, "node 'n' (Reshape, created at user.py:7)"),
    ({"op": "Cast", "attrs": {"DstT": "float32"}}, "node 'n'"),
])
def test_malformed_graphs_are_rejected_naming_the_node(changes, message):
    with pytest.raises(errors.InvalidArgumentError, match=None) as failure:
        convert.nodes_from_proto(_bad_node(**changes), GraphTypes())
    assert message in str(failure.value)


def _sum_with_axis(axis_attr) -> graph_pb2.GraphDef:
    """A GraphDef whose node `s` is a Sum over a constant, with `axis` set to `axis_attr` on the wire."""
    graph = _bad_node()
    del graph.nodes[1:]
    node = graph.nodes.add(name="s", op="Sum", inputs=["c:0"])
    node.source.file, node.source.line = "user.py", 9
    convert.attr_to_proto(axis_attr, node.attrs["axis"])
    convert.attr_to_proto(False, node.attrs["keepdims"])
    return graph


def _declares(op: str, attr_name: str) -> bool:
    return attr_name in (registry.get(op).attrs or {})


@pytest.mark.skipif(not _declares("Sum", "axis"), reason="Sum declares no attr schema yet (op declarations branch)")
def test_a_wrong_attr_type_names_node_op_attr_and_expected_type():
    with pytest.raises(errors.InvalidArgumentError) as failure:
        convert.nodes_from_proto(_sum_with_axis("zero"), GraphTypes())
    expected = registry.get("Sum").attrs["axis"].describe()
    message = str(failure.value)
    for part in ("node 's'", "Sum", "created at user.py:9", "'axis'", expected, "str"):
        assert part in message, (part, message)


def test_a_wrong_attr_type_of_a_declared_op_names_node_op_attr_and_expected_type():
    graph = _bad_node()
    del graph.nodes[1:]
    node = graph.nodes.add(name="k", op="Const")
    convert.attr_to_proto(np.ones(2, np.float32), node.attrs["value"])
    convert.attr_to_proto("float32", node.attrs["dtype"])  # a string where a dtype belongs
    with pytest.raises(errors.InvalidArgumentError) as failure:
        convert.nodes_from_proto(graph, GraphTypes())
    message = str(failure.value)
    for part in ("node 'k'", "Const", "'dtype'", registry.get("Const").attrs["dtype"].describe(), "str"):
        assert part in message, (part, message)


def test_field_numbers_come_from_the_descriptors():
    header = spb.RunCallableRequest(session_handle="s").SerializeToString()
    data = header + codec.varint_field(spb.RunCallableRequest, "request_id", 300)
    assert spb.RunCallableRequest.FromString(data).request_id == 300
    batch = codec.message_field(spb.RunRequest, "batch", spb.RunRequest(callable_handle="c").SerializeToString())
    assert spb.RunRequest.FromString(batch).batch[0].callable_handle == "c"
    for cls, name in ((spb.RunCallableRequest, "feeds"), (spb.RunResponse, "fetches"), (spb.RunRequest, "part_data")):
        assert codec.field_number(cls, name) == cls.DESCRIPTOR.fields_by_name[name].number


def test_plan_round_trip_runs_identically():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        y = tf.nn.relu(tf.exp(x * 2.0 + 1.0) - 3.0)  # a fused elementwise chain with constants
        z = tf.reduce_sum(tf.matmul(x, tf.ones([3, 2])), axis=0)
    program = ir.Program(graph.nodes(), ("x:0",), (y.name, z.name), (), None)
    plan = compile_program(program, graph.digest())
    back = convert.plan_from_proto(graph_pb2.Plan.FromString(convert.plan_to_proto(plan).SerializeToString()))
    assert str(back) == str(plan) and back.steps == plan.steps
    assert any(step.op == "Fused" for step in back.steps)
    feed = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    run = [LoadedPlan(p).run(ExecContext(), [feed]) for p in (plan, back)]
    for a, b in zip(*run):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("error_class", sorted(errors.BY_CODE.values(), key=lambda c: c.error_code))
def test_error_classes_map_to_status_codes_and_back(error_class):
    code = status.status_code(error_class(None, None, "boom"))
    assert code.value[0] == error_class.error_code
    back = status.error_from_status(code, "boom")
    assert type(back) is error_class and str(back) == "boom"


def test_memory_errors_and_bugs_have_their_own_statuses():
    assert status.failure_status(MemoryError()) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "out of memory")
    code, message = status.failure_status(ZeroDivisionError("x"), log_bugs=False)
    assert code == grpc.StatusCode.INTERNAL and message == "internal error: ZeroDivisionError: x"
    assert status.RETRYABLE == {grpc.StatusCode.UNAVAILABLE}


@pytest.mark.parametrize("service, servicer", [(methods.GRAPH_EXEC_SERVICE, GraphExecServicer),
                                               (methods.WORKER_SERVICE, WorkerServicer)])
def test_every_rpc_of_a_service_has_its_handler(service, servicer):
    assert methods.handler_name("RunPlan") == "run_plan" and methods.handler_name("Run") == "run"
    for method in service.methods:
        assert callable(getattr(servicer, methods.handler_name(method.name)))


def test_committed_generated_protos_match_a_fresh_generation(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tools" / "gen_protos.py"), "--out", str(tmp_path)], check=True,
                   timeout=120)
    committed = ROOT / "graphexec" / "proto" / "v1"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["graphexec_v1.binpb"]
    match, mismatch, missing = filecmp.cmpfiles(tmp_path, committed, names, shallow=False)
    assert not mismatch and not missing, f"regenerate with tools/gen_protos.py: {mismatch + missing}"


def test_messages_built_from_the_descriptor_set_are_protobufs_own():
    """The committed descriptor set yields the same classes protoc's generated modules would."""
    assert graph_pb2.GraphDef.DESCRIPTOR.full_name == "graphexec.v1.GraphDef"
    assert graph_pb2.DataType.Value("DATA_TYPE_FLOAT32") == graph_pb2.DATA_TYPE_FLOAT32 == 2
    assert spb.RunRequest.DESCRIPTOR.file.dependencies[0].name == "graphexec/v1/graph.proto"
    graph = graph_pb2.GraphDef(format_version=1, nodes=[graph_pb2.NodeDef(name="n", op="NoOp")])
    assert graph_pb2.GraphDef.FromString(graph.SerializeToString()) == graph


def test_protobuf_types_stay_at_the_edge():
    """Only graphexec.rpc and the gRPC glue import the generated *_pb2 modules."""
    glue = {"graphexec/server/servicer.py", "graphexec/server/worker_service.py"}
    importers = set()
    for path in (ROOT / "graphexec").rglob("*.py"):
        relative = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if any(name.startswith("graphexec.proto") for name in names):
                importers.add(relative)
    outside = {p for p in importers if not p.startswith(("graphexec/rpc/", "graphexec/client/", "graphexec/proto/"))}
    assert outside <= glue, sorted(outside - glue)
