"""The TF1 graph API: names and scopes, devices, control dependencies, collections, lookups, static
shapes, error messages, feeds and fetches, default sessions, callables and run metadata."""
import collections
import os
import sys

import numpy as np
import pytest

import graphexec as tf

HERE = os.path.basename(__file__)


def this_line() -> int:
    return sys._getframe(1).f_lineno


# -- names, scopes, devices ----------------------------------------------------------------------------
def test_default_names_are_made_unique():
    names = [tf.constant(1.0).op.name for _ in range(3)]
    assert names == ["Const", "Const_1", "Const_2"]
    x = tf.placeholder(tf.float32, name="Const_3")
    assert x.op.name == "Const_3" and tf.constant(1.0).op.name == "Const_4"  # skips a name the user took
    assert tf.add(x, x).op.name == "Add" and tf.add(x, x, name="add").op.name == "add_1"
    assert tf.identity(x, name="Add").op.name == "Add_2"  # case-insensitive: shares the counter of "add"


def test_name_scopes_nest_and_are_made_unique():
    with tf.name_scope("outer") as outer:
        assert outer == "outer/"
        a = tf.constant(1.0, name="a")
        with tf.name_scope("inner"):
            b = tf.constant(1.0, name="b")
    with tf.name_scope("outer") as again:
        c = tf.constant(1.0, name="a")
    assert (a.name, b.name, again, c.name) == ("outer/a:0", "outer/inner/b:0", "outer_1/", "outer_1/a:0")
    with tf.name_scope(outer):  # re-entering an existing scope by its full name
        assert tf.constant(1.0, name="d").op.name == "outer/d"
    with tf.name_scope(None, "default") as scope:
        assert scope == "default/"


def test_devices_are_recorded_and_nest():
    with tf.device("/gpu:0"):
        a = tf.constant(1.0)
        with tf.device("/cpu:0"):
            b = a + 1
        c = a * 2
    d = tf.constant(2.0)
    assert (a.device, b.device, c.device, d.device) == ("/gpu:0", "/cpu:0", "/gpu:0", "")
    assert a.op.node_def.device == "/gpu:0"


def test_control_dependencies_are_recorded_in_order():
    first, second = tf.no_op(name="first"), tf.constant(1.0, name="second")
    with tf.control_dependencies([first, second]):
        y = tf.constant(2.0, name="y")
    assert [op.name for op in y.op.control_inputs] == ["first", "second"]
    assert y.op.node_def.control_inputs == ("first", "second")


def test_control_dependencies_run_before_the_dependent_op():
    v = tf.Variable(0)
    with tf.control_dependencies([v.assign(1)]):
        with tf.control_dependencies([v.assign_add(10)]):
            read = tf.identity(v.read_value())
    with tf.Session() as sess:
        sess.run(v.initializer)
        assert sess.run(read) == 11  # assign_add was built under the assign's dependency: 1, then + 10


# -- collections and lookups ---------------------------------------------------------------------------
def test_collections():
    a, b = tf.constant(1.0, name="a"), tf.constant(2.0, name="scoped/b")
    tf.add_to_collection("mine", a)
    tf.get_default_graph().add_to_collections(["mine", "other"], b)
    assert tf.get_collection("mine") == [a, b] and tf.get_collection("other") == [b]
    assert tf.get_collection("mine", scope="scoped") == [b]
    assert tf.get_collection("missing") == []
    ref = tf.get_collection_ref("refs")
    ref.append(a)
    assert tf.get_collection("refs") == [a]
    copy = tf.get_collection("mine")
    copy.clear()
    assert len(tf.get_collection("mine")) == 2  # get_collection returns a copy


def test_get_tensor_and_operation_by_name():
    graph = tf.get_default_graph()
    with tf.name_scope("s"):
        x = tf.placeholder(tf.float32, name="x")
    parts = tf.split(tf.zeros([4]), 2, name="parts")
    assert graph.get_tensor_by_name("s/x:0") is x
    assert graph.get_operation_by_name("s/x") is x.op
    assert graph.get_tensor_by_name("parts:1") is parts[1]
    assert graph.as_graph_element("s/x") is x.op and graph.as_graph_element("s/x:0") is x
    with pytest.raises(KeyError, match="nope"):
        graph.get_tensor_by_name("nope:0")
    with pytest.raises(KeyError, match="does not exist"):
        graph.get_tensor_by_name("parts:2")
    assert x.op in graph.get_operations()


# -- static shapes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("build,expected", [
    (lambda x: x @ tf.zeros([3, 4]), [None, 4]),
    (lambda x: x + tf.zeros([3]), [None, 3]),
    (lambda x: tf.reduce_sum(x, axis=1), [None]),
    (lambda x: tf.reduce_sum(x, axis=0, keepdims=True), [1, 3]),
    (lambda x: tf.transpose(x), [3, None]),
    (lambda x: tf.reshape(x, [-1]), [None]),
    (lambda x: tf.concat([x, x], 1), [None, 6]),
    (lambda x: tf.expand_dims(x, 1), [None, 1, 3]),
    (lambda x: x[:, 1], [None]),
    (lambda x: tf.shape(x), [2]),
    (lambda x: tf.argmax(x, 1), [None]),
    (lambda x: tf.tile(x, [2, 2]), [None, 6]),
    (lambda x: tf.pad(x, [[1, 1], [0, 2]]), [None, 5]),
    (lambda x: tf.one_hot(tf.cast(x[:, 0], tf.int32), 5), [None, 5]),
    (lambda x: tf.gather(x, [0, 1], axis=1), [None, 2]),
    (lambda x: tf.stack([x, x], axis=1), [None, 2, 3]),
    (lambda x: tf.zeros_like(x), [None, 3]),
], ids=lambda v: v if isinstance(v, list) else "")
def test_shape_inference_keeps_unknown_dims(build, expected):
    x = tf.placeholder(tf.float32, [None, 3])
    y = build(x)
    assert y.shape.as_list() == expected and y.get_shape().as_list() == expected


def test_unknown_rank_propagates_and_set_shape_refines():
    x = tf.placeholder(tf.float32)
    assert (x * 2).shape.dims is None and tf.shape(x).shape.as_list() == [None]
    y = tf.placeholder(tf.float32, [None, None])
    y.set_shape([None, 3])
    assert y.shape.as_list() == [None, 3]
    with pytest.raises(ValueError, match="incompatible"):
        y.set_shape([2, 4])


# -- error messages ------------------------------------------------------------------------------------
def test_shape_error_names_op_inputs_and_the_users_line():
    a = tf.placeholder(tf.float32, [None, 3], name="a")
    b = tf.constant(np.zeros((4, 5), np.float32), name="b")
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        line = this_line() + 1
        tf.matmul(a, b, name="product")
    message = str(info.value)
    for part in ("MatMul", "'product'", "'a:0' float32[?,3]", "'b:0' float32[4,5]", f"{HERE}:{line}"):
        assert part in message, (part, message)


def test_dtype_error_names_op_inputs_and_the_users_line():
    a, b = tf.constant([1.0], name="x"), tf.constant([1], tf.int32, name="y")
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        line = this_line() + 1
        tf.add(a, b, name="mixed")
    message = str(info.value)
    for part in ("Add", "'mixed'", "'x:0' float32[1]", "'y:0' int32[1]", f"{HERE}:{line}"):
        assert part in message, (part, message)


def test_run_time_error_names_the_node_and_the_users_line():
    x = tf.placeholder(tf.float32, [None], name="x")
    line = this_line() + 1
    picked = tf.gather(x, [7], name="picked")
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError) as info:
        sess.run(picked, {x: [1.0, 2.0]})
    assert "picked" in str(info.value) and f"{HERE}:{line}" in str(info.value)


@pytest.mark.parametrize("value,fragment", [(np.zeros((2, 4), np.float32), "[2, 4]"),
                                            (np.zeros((3,), np.float32), "[3]")], ids=["shape", "rank"])
def test_feeding_a_wrong_shape_names_the_placeholder_and_both_shapes(value, fragment):
    x = tf.placeholder(tf.float32, [None, 3], name="inputs")
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError) as info:
        sess.run(x * 2, {x: value})
    message = str(info.value)
    assert "inputs:0" in message and fragment in message and "[?,3]" in message


def test_feeding_a_wrong_dtype_names_the_placeholder_and_both_types():
    x = tf.placeholder(tf.int32, [2], name="counts")
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError) as info:
        sess.run(x + 1, {x: np.array([1.5, 2.5])})
    message = str(info.value)
    assert "counts:0" in message and "float64" in message and "int32" in message
    with tf.Session() as sess:
        assert sess.run(x + 1, {x: [1, 2]}).tolist() == [2, 3]  # Python ints convert


def test_uninitialized_variable_is_named():
    v = tf.Variable(tf.zeros([2]), name="weights")
    with tf.Session() as sess, pytest.raises(tf.errors.FailedPreconditionError, match="weights"):
        sess.run(v)


# -- fetches, feeds, sessions --------------------------------------------------------------------------
Pair = collections.namedtuple("Pair", "left right")


def test_nested_fetches_keep_their_structure():
    a, b = tf.constant(1.0), tf.constant([2, 3])
    with tf.Session() as sess:
        out = sess.run({"a": a, "pair": Pair(a, [b, (a,)]), "list": [b, a], "op": tf.no_op()})
    assert isinstance(out, dict) and isinstance(out["pair"], Pair) and isinstance(out["pair"].right[1], tuple)
    assert out["a"] == 1.0 and out["pair"].left == 1.0 and out["pair"].right[1][0] == 1.0
    assert out["list"][0].tolist() == [2, 3] and out["op"] is None
    with tf.Session() as sess:
        assert sess.run((a, b))[0] == 1.0 and sess.run("Const:0") == 1.0


def test_fetches_are_owned_copies():
    c = tf.constant([1.0, 2.0])
    with tf.Session() as sess:
        first = sess.run(c)
        first[0] = 9
        assert sess.run(c).tolist() == [1.0, 2.0]


def test_feeding_by_name_and_feeding_an_intermediate_tensor():
    x = tf.placeholder(tf.float32, [], name="x")
    doubled = x * 2
    y = doubled + 1
    with tf.Session() as sess:
        assert sess.run(y, {"x:0": 3.0}) == 7.0
        assert sess.run(y, {doubled: 10.0}) == 11.0  # x need not be fed: it is cut off


def test_eval_run_and_default_sessions():
    v = tf.Variable(2.0)
    y = v * 3
    with pytest.raises(ValueError, match="No default session"):
        y.eval()
    with tf.Session() as sess:
        assert tf.get_default_session() is sess
        v.initializer.run()
        assert y.eval() == 6.0 and v.eval() == 2.0
    assert tf.get_default_session() is None
    other = tf.Session()
    other.run(v.initializer)
    assert y.eval(session=other) == 6.0
    other.close()
    with pytest.raises(RuntimeError, match="closed"):
        other.run(y)


def test_interactive_session_installs_itself():
    x = tf.placeholder(tf.float32, [2])
    sess = tf.InteractiveSession()
    try:
        assert tf.get_default_session() is sess
        assert (x * 2).eval({x: [1, 2]}).tolist() == [2, 4]
    finally:
        sess.close()
    assert tf.get_default_session() is None


def test_session_on_another_graph():
    graph = tf.Graph()
    with graph.as_default():
        c = tf.constant(5)
    assert tf.get_default_graph() is not graph
    with tf.Session(graph=graph) as sess:
        assert sess.run(c) == 5
    with tf.Session() as sess, pytest.raises(ValueError, match="graph"):
        sess.run(c)


def test_make_callable():
    x, y = tf.placeholder(tf.float32, [None]), tf.placeholder(tf.float32, [])
    total = tf.reduce_sum(x) * y
    with tf.Session() as sess:
        call = sess.make_callable([total, {"x": x}], feed_list=[x, y])
        result = call([1, 2, 3], 2.0)
        assert result[0] == 12.0 and result[1]["x"].tolist() == [1, 2, 3]
        assert call(np.ones(2, np.float32), 0.5)[0] == 1.0
        with pytest.raises(TypeError, match="2 feed values"):
            call([1.0])


def test_full_trace_run_metadata_has_per_node_timings():
    x = tf.placeholder(tf.float32, [100, 100], name="x")
    y = tf.matmul(x, x, name="product")
    z = tf.reduce_sum(y, name="total")
    options, metadata = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE), tf.RunMetadata()
    with tf.Session() as sess:
        sess.run(z, {x: np.ones((100, 100), np.float32)}, options=options, run_metadata=metadata)
    stats = {s.node_name: s for s in metadata.step_stats.node_stats}
    assert {"product", "total"} <= set(stats)
    assert all(s.duration_micros >= 0 and s.start_micros > 0 for s in stats.values())
    assert stats["product"].op == "MatMul" and "product" in metadata.executed_nodes
