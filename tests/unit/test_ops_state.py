"""Variables (assign, assign_add/sub, initializers, collections) and ordering ops (group,
control_dependencies, no_op), checked against numpy values."""
import numpy as np
import pytest

import graphexec as tf
from opcheck import sample

NUMERIC = [tf.float16, tf.float32, tf.float64, tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8, tf.uint16]


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
def test_variable_assign_add_sub(dtype):
    start, delta = sample((2, 3), dtype, low=3, high=6, seed=1), sample((2, 3), dtype, low=0, high=3, seed=2)
    v = tf.Variable(start, name="v")
    assert v.dtype is dtype and v.shape.as_list() == [2, 3] and v.name == "v:0"
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(v), start)
        np.testing.assert_array_equal(sess.run(v.assign_add(delta)), start + delta)
        np.testing.assert_array_equal(sess.run(tf.assign_sub(v, delta)), start)
        np.testing.assert_array_equal(sess.run(tf.assign_add(v, delta)), start + delta)
        np.testing.assert_array_equal(sess.run(v.assign_sub(delta)), start)
        np.testing.assert_array_equal(sess.run(tf.assign(v, delta)), delta)
        np.testing.assert_array_equal(sess.run(v), delta)


def test_variable_from_a_callable_a_tensor_and_another_variable():
    a = tf.Variable(lambda: tf.ones([2]) * 3)
    b = tf.Variable(a.initialized_value() + 1)
    c = tf.Variable(tf.zeros([2], tf.int64), trainable=False)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run([a, b, c]), [[3, 3], [4, 4], [0, 0]])


def test_variable_in_expressions_converts_to_its_value():
    v = tf.Variable([1.0, 2.0])
    y = v * 2 + tf.constant([1.0, 1.0]) - v
    with tf.Session() as sess:
        sess.run(v.initializer)
        np.testing.assert_array_equal(sess.run(y), [2, 3])
        np.testing.assert_array_equal(v.eval(), [1, 2])


def test_assign_rejects_wrong_shape_and_dtype():
    v = tf.Variable(tf.zeros([2, 3]), name="w")
    with pytest.raises(tf.errors.InvalidArgumentError, match="variable 'w'"):
        v.assign(tf.zeros([3, 2]))
    with pytest.raises((ValueError, TypeError)):
        v.assign(tf.zeros([2, 3], tf.int32))


def test_uninitialized_variable_is_a_failed_precondition_naming_it():
    v = tf.Variable(1.0, name="lonely")
    with tf.Session() as sess, pytest.raises(tf.errors.FailedPreconditionError, match="lonely"):
        sess.run(v + 1)


def test_variable_state_belongs_to_the_session():
    v = tf.Variable(1.0)
    increment = v.assign_add(1.0)
    with tf.Session() as first, tf.Session() as second:
        first.run(tf.global_variables_initializer())
        second.run(tf.global_variables_initializer())
        first.run(increment)
        first.run(increment)
        assert first.run(v) == 3.0 and second.run(v) == 1.0


def test_collections_and_initializers():
    a = tf.Variable(1.0, name="a")
    b = tf.Variable(2.0, name="b", trainable=False)
    local = tf.Variable(3.0, name="local", collections=[tf.GraphKeys.LOCAL_VARIABLES], trainable=False)
    with tf.name_scope("scope"):
        scoped = tf.Variable(4.0, name="s")
    assert tf.global_variables() == [a, b, scoped]
    assert tf.trainable_variables() == [a, scoped]
    assert tf.local_variables() == [local]
    assert tf.global_variables("scope") == [scoped]
    assert tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES) == [a, scoped]
    with tf.Session() as sess:
        sess.run(tf.variables_initializer([a]))
        assert sess.run(a) == 1.0
        with pytest.raises(tf.errors.FailedPreconditionError, match="b"):
            sess.run(b)
        sess.run(tf.local_variables_initializer())
        assert sess.run(local) == 3.0
        sess.run(tf.global_variables_initializer())
        assert sess.run([b, scoped]) == [2.0, 4.0]
        assert sess.run(tf.variables_initializer([])) is None  # an empty list: a no-op


def test_group_runs_every_input():
    a, b = tf.Variable(0), tf.Variable(10)
    step = tf.group(a.assign_add(1), [b.assign_sub(2)], name="step")
    assert step.type == "NoOp" and step.name == "step"
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(step) is None
        sess.run(step)
        assert sess.run([a, b]) == [2, 6]


def test_control_dependencies_order_reads_after_writes():
    v = tf.Variable(1.0)
    with tf.control_dependencies([v.assign(5.0)]):
        after = tf.identity(v.read_value())
        marker = tf.no_op(name="marker")
    assert marker.type == "NoOp" and len(marker.control_inputs) == 1
    with tf.Session() as sess:
        sess.run(v.initializer)
        assert sess.run(after) == 5.0


def test_control_dependencies_none_clears_and_nesting_accumulates():
    a, b = tf.no_op(name="a"), tf.no_op(name="b")
    with tf.control_dependencies([a]):
        with tf.control_dependencies([b]):
            both = tf.constant(1.0, name="both")
        with tf.control_dependencies(None):
            free = tf.constant(1.0, name="free")
    assert [op.name for op in both.op.control_inputs] == ["a", "b"]
    assert free.op.control_inputs == ()


def test_no_op_runs_and_fetches_nothing():
    with tf.Session() as sess:
        assert sess.run(tf.no_op()) is None
        assert sess.run([tf.no_op(), tf.constant(2)])[1] == 2
