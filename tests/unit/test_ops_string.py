"""tf.string: constants, feeds, fetches, variables, checkpoints, the wire and the digest, and the string
ops, checked against a golden run of the same program under real TensorFlow (golden/strings/)."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib

import numpy as np
import pytest

import graphexec as tf
from graphexec import digest, dtypes, errors
from graphexec.compiler.plan import Endpoint, Plan, Step
from graphexec.framework import apply_op
from graphexec.ir import TensorType
from graphexec.proto.v1 import graph_pb2, service_pb2
from graphexec.rpc.codec import decode_tensor_message, encode_tensor_message
from graphexec.rpc.tensors import dtype_enum, tensor_from_proto, tensor_to_proto
from graphexec.runtime import placement
from graphexec.train import saver as saver_module

GOLDEN = pathlib.Path(__file__).parent / "golden" / "strings"


def _load_golden_program():
    """The program module beside the golden file (it imports TensorFlow only when regenerating)."""
    spec = importlib.util.spec_from_file_location("strings_golden_program", GOLDEN / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _decode(entry):
    if entry["dtype"] == "string":
        values = [bytes.fromhex(h) for h in entry["hex"]]
        if entry.get("scalar_bytes"):
            return values[0]
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(entry["shape"])
    return np.array(entry["values"], dtype=entry["dtype"]).reshape(entry["shape"])


def test_hello_world_program_matches_tensorflow():
    golden = json.loads((GOLDEN / "hello_strings.json").read_text())
    program = _load_golden_program()
    fetches, words = program.program(tf)
    with tf.Session() as sess:
        results = sess.run(fetches, {words: program.FEED})
    assert sorted(results) == sorted(golden)
    for key, entry in golden.items():
        want, got = _decode(entry), results[key]
        if isinstance(want, bytes):
            assert type(got) is bytes and got == want, key
            continue
        assert got.dtype == want.dtype and got.shape == want.shape, (key, got, want)
        np.testing.assert_array_equal(got, want, err_msg=key)


def test_hello_world_is_bytes_like_tf1():
    hello = tf.constant("Hello, TensorFlow!")
    assert hello.dtype is tf.string and hello.shape.as_list() == []
    with tf.Session() as sess:
        assert sess.run(hello) == b"Hello, TensorFlow!"


def test_string_feeds_fetches_and_generic_ops():
    words = tf.placeholder(tf.string, [None, 2])
    feed = [["a", b"b"], ["\u00e9", ""]]
    stacked = tf.concat([words, words[:, ::-1]], axis=0)
    with tf.Session() as sess:
        got = sess.run([words, tf.transpose(words), stacked, tf.gather(tf.reshape(words, [-1]), [3, 0]),
                        tf.not_equal(words, "a"), tf.identity(words)[1]], {words: feed})
    want = np.array([[b"a", b"b"], ["\u00e9".encode(), b""]], dtype=object)
    assert got[0].dtype == object and all(type(v) is bytes for v in got[0].reshape(-1))
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(got[1], want.T)
    np.testing.assert_array_equal(got[2], np.concatenate([want, want[:, ::-1]]))
    np.testing.assert_array_equal(got[3], [b"", b"a"])
    np.testing.assert_array_equal(got[4], [[False, True], [True, True]])
    np.testing.assert_array_equal(got[5], want[1])


def test_bad_string_feeds_and_types_are_clear():
    words = tf.placeholder(tf.string, [2])
    numbers = tf.placeholder(tf.float32, [1])
    with tf.Session() as sess:
        with pytest.raises(errors.InvalidArgumentError, match="string tensor"):
            sess.run(words, {words: [1, 2]})
        with pytest.raises(errors.InvalidArgumentError, match="shape"):
            sess.run(words, {words: ["a"]})
        with pytest.raises(errors.InvalidArgumentError, match="dtype"):
            sess.run(numbers, {numbers: np.array([b"x"], dtype=object)})
        with pytest.raises(errors.InvalidArgumentError, match="could not correctly convert string: x"):
            sess.run(tf.strings.to_number(words), {words: ["1", "x"]})
    with pytest.raises(ValueError, match="requested dtype string"):
        tf.strings.length(numbers)
    with pytest.raises(errors.InvalidArgumentError, match="must be a string tensor, got float32"):
        apply_op("StringJoin", [tf.constant("a"), numbers], {"separator": ""})  # as a node off the wire would
    with pytest.raises(errors.InvalidArgumentError, match="not supported|string"):
        tf.constant("a") + tf.constant("b")
    with pytest.raises(errors.InvalidArgumentError, match="fill"):
        tf.as_string(tf.constant(1), fill="x")


def test_string_variables_assign_and_checkpoint(tmp_path):
    names = tf.Variable(["a", "bcd"], name="names")
    update = tf.assign(names, tf.strings.upper(names))
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(update)
        path = saver.save(sess, str(tmp_path / "model"))
    with tf.Session() as sess:
        saver.restore(sess, path)
        np.testing.assert_array_equal(sess.run(names), [b"A", b"BCD"])
    blob = saver_module.encode({"s": np.array([b"xy", b""], dtype=object)})
    back, _ = saver_module.decode(blob)
    np.testing.assert_array_equal(back["s"], [b"xy", b""])
    broken = bytearray(blob)
    broken[-7] = 200  # the first element now claims 200 bytes
    with pytest.raises(errors.DataLossError):
        saver_module.decode(bytes(broken))


def test_wire_encoding_is_length_prefixed_and_checked():
    value = np.array([[b"ab", b""], ["\u00e9".encode(), b"\x00"]], dtype=object)
    message = tensor_to_proto(value)
    assert message.dtype == graph_pb2.DATA_TYPE_STRING == dtype_enum(tf.string)
    assert message.content == b"\x02\x00\x00\x00ab" + b"\x00" * 4 + b"\x02\x00\x00\x00\xc3\xa9" + b"\x01\x00\x00\x00\x00"
    np.testing.assert_array_equal(tensor_from_proto(message), value)
    for content, why in [(b"\x02\x00\x00\x00a", "runs past"), (b"\x00\x00\x00\x00" * 5, "after its 4"),
                         (b"\x00\x00", "ends after 0")]:
        with pytest.raises(errors.InvalidArgumentError, match=why):
            tensor_from_proto(graph_pb2.Tensor(dtype=graph_pb2.DATA_TYPE_STRING, shape=[2, 2], content=content))
    # The hand-rolled codec (small messages parsed by protobuf, large ones walked) agrees both ways.
    for count in (3, 40000):
        arrays = [np.array([b"x" * (i % 5) for i in range(count)], dtype=object), np.arange(3.0)]
        data = encode_tensor_message(service_pb2.RunCallableRequest(), "feeds", arrays)
        _, decoded, _ = decode_tensor_message(service_pb2.RunCallableRequest, data, "feeds")
        np.testing.assert_array_equal(decoded[0], arrays[0])
        np.testing.assert_array_equal(decoded[1], arrays[1])


def test_digest_hashes_string_content_not_object_pointers():
    def node_of(*values):
        graph = tf.Graph()
        with graph.as_default():
            tf.constant(np.array(values, dtype=object), name="c")
        return graph.nodes()[0]

    first, same, other = node_of(b"ab", b"c"), node_of(b"ab", b"c"), node_of(b"a", b"bc")
    assert digest.node_bytes(first) == digest.node_bytes(same)
    assert digest.node_bytes(first) != digest.node_bytes(other)  # length prefixes keep the splits apart
    assert b"\x06\x00\x00\x00string" in digest.node_bytes(first)
    assert first.attrs == same.attrs and first.attrs != other.attrs and hash(first.attrs) == hash(same.attrs)


def test_string_steps_run_on_the_host_when_a_gpu_is_live():
    string, number = TensorType(dtypes.string, (2,)), TensorType(dtypes.float32, (2,))
    steps = (Step("len", "StringLength", {}, (0,), (1,), (0,), output_types=(TensorType(dtypes.int32, (2,)),)),
             Step("f", "Cast", {}, (1,), (0,), (1,), output_types=(number,)),
             Step("neg", "Neg", {}, (0,), (1,), (0,), output_types=(number,)),
             Step("s", "AsString", {}, (1,), (0,), (1,), output_types=(string,)))
    plan = Plan("d" * 64, (Endpoint("x:0", 0, string),), (Endpoint("s:0", 0, string),), steps, 2)
    assert placement.string_steps(plan) == {0, 3}
    placed = placement.place(plan, frozenset({placement.CPU, placement.GPU}))
    assert placed.device_type == placement.GPU and placed.host_steps == (0, 3) and not placed.soft
    pinned = Plan(plan.graph_digest, plan.feeds, plan.fetches,
                  (dataclasses.replace(steps[0], device="/gpu:0"), *steps[1:]), 2)
    soft = placement.place(pinned, frozenset({placement.CPU, placement.GPU}))
    assert soft.host_steps == (0, 3) and [d.node for d in soft.soft] == ["len"]
    with pytest.raises(errors.InvalidArgumentError, match="'len'.*tf.string.*soft placement"):
        placement.place(pinned, frozenset({placement.CPU, placement.GPU}), allow_soft=False)


@pytest.mark.parametrize("fn, args, want", [
    (tf.strings.join, (["a", ["b", "c"]],), [b"ab", b"ac"]),
    (tf.strings.substr if hasattr(tf.strings, "substr") else tf.substr, ("h\u00e9llo", 1, 2),
     "\u00e9".encode()),
    (tf.strings.strip, ([" a b\n"],), [b"a b"]),
    (tf.strings.regex_replace, (["aaa"], "a", "b", False), [b"baa"]),
])
def test_string_op_cases(fn, args, want):
    with tf.Session() as sess:
        got = sess.run(fn(*args))
    np.testing.assert_array_equal(got, np.array(want, dtype=object))


def test_strings_split_v2_takes_whole_separators():
    with tf.Session() as sess:
        parts = sess.run(tf.strings.split(["a<>b<><>c", " x  y "], sep="<>"))
        spaces = sess.run(tf.strings.split(["a<>b", " x  y "]))
    assert isinstance(parts, tf.SparseTensorValue)
    np.testing.assert_array_equal(parts.values, [b"a", b"b", b"", b"c", b" x  y "])
    np.testing.assert_array_equal(parts.dense_shape, [2, 4])
    np.testing.assert_array_equal(spaces.values, [b"a<>b", b"x", b"y"])
    np.testing.assert_array_equal(spaces.indices, [[0, 0], [1, 0], [1, 1]])


def test_string_ops_have_no_gradient():
    x = tf.placeholder(tf.float32, [2])
    assert tf.gradients(tf.strings.to_number(tf.as_string(x)), x) == [None]


def test_generic_ops_treat_strings_as_tf_does():
    s = tf.constant([["a", "bb"], ["c", ""]])
    with tf.Session() as sess:
        zeros, padded, filled, picked, tiled = sess.run([
            tf.zeros_like(s), tf.pad(s, [[0, 1], [1, 0]]), tf.fill([2], "x"),
            tf.where([[True, False], [False, True]], s, tf.zeros_like(s)), tf.tile(s[:1], [2, 1])])
    np.testing.assert_array_equal(zeros, [[b"", b""], [b"", b""]])
    np.testing.assert_array_equal(padded, [[b"", b"a", b"bb"], [b"", b"c", b""], [b"", b"", b""]])
    assert all(type(v) is bytes for v in padded.reshape(-1))
    np.testing.assert_array_equal(filled, [b"x", b"x"])
    np.testing.assert_array_equal(picked, [[b"a", b""], [b"", b""]])
    np.testing.assert_array_equal(tiled, [[b"a", b"bb"], [b"a", b"bb"]])
    for refused in (lambda: tf.ones_like(s), lambda: tf.scatter_nd([[0]], tf.constant(["q"]), [2]),
                    lambda: tf.cast(s, tf.int32), lambda: tf.reduce_sum(s)):
        with pytest.raises(errors.InvalidArgumentError, match="string"):
            refused()


def test_variable_load_takes_str_as_bytes():
    names = tf.Variable(["a", "b"])
    with tf.Session() as sess:
        names.load(["x", "yz"], sess)
        got = sess.run(names)
    assert [type(v) for v in got] == [bytes, bytes]
    np.testing.assert_array_equal(got, [b"x", b"yz"])
