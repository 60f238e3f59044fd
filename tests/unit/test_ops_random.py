"""Random ops: shapes, dtypes, distributions, and TF1's seed semantics (op seed, graph seed, neither)."""
import subprocess
import sys

import numpy as np
import pytest

import graphexec as tf

FLOATS = [tf.float16, tf.float32, tf.float64]


def draw(make, runs=1, seed=None, op_seed=None):
    """Build `make(seed=op_seed)` in a fresh graph (graph seed `seed`) and run it `runs` times in one session."""
    graph = tf.Graph()
    with graph.as_default():
        if seed is not None:
            tf.set_random_seed(seed)
        tensor = make(seed=op_seed)
    with tf.Session(graph=graph) as sess:
        return [sess.run(tensor) for _ in range(runs)]


NORMAL = lambda seed: tf.random_normal([1000], seed=seed)  # noqa: E731 - a table of builders


# -- shapes, dtypes, distributions ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("fn", [tf.random_normal, tf.truncated_normal, tf.random_uniform],
                         ids=["normal", "truncated", "uniform"])
def test_float_dtypes_and_shapes(fn, dtype):
    t = fn([2, 3, 4], dtype=dtype, seed=1)
    assert t.dtype is dtype and t.shape.as_list() == [2, 3, 4]
    value = tf.Session().run(t)
    assert value.dtype == dtype.np and value.shape == (2, 3, 4) and np.all(np.isfinite(value))


@pytest.mark.parametrize("fn", [tf.random_normal, tf.truncated_normal, tf.random_uniform],
                         ids=["normal", "truncated", "uniform"])
def test_shape_from_a_tensor_or_a_run_time_value(fn):
    x = tf.placeholder(tf.float32, [None, 3])
    t = fn(tf.shape(x), seed=2)
    assert t.shape.as_list() == [None, 3]
    dims = tf.placeholder(tf.int32, [2])
    u = fn(dims, seed=3)
    assert u.shape.as_list() == [None, None]
    with tf.Session() as sess:
        assert sess.run(t, {x: np.zeros((5, 3))}).shape == (5, 3)
        assert sess.run(u, {dims: [4, 1]}).shape == (4, 1)
        assert fn([], seed=4).eval().shape == ()


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=str)
def test_normal_moments(dtype):
    values = tf.Session().run(tf.random_normal([20000], mean=3.0, stddev=2.0, dtype=dtype, seed=5))
    assert abs(values.mean() - 3.0) < 0.06 and abs(values.std() - 2.0) < 0.06


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=str)
def test_truncated_normal_stays_within_two_stddevs(dtype):
    values = tf.Session().run(tf.truncated_normal([20000], mean=-1.0, stddev=0.5, dtype=dtype, seed=6))
    assert values.min() >= -2.0 and values.max() <= 0.0
    assert abs(values.mean() + 1.0) < 0.02
    assert 0.40 < values.std() < 0.46  # a normal truncated at 2 sigma has std ~0.88 sigma


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_uniform_float_range(dtype):
    values = tf.Session().run(tf.random_uniform([20000], minval=-2, maxval=5, dtype=dtype, seed=7))
    assert values.min() >= -2 and values.max() <= 5
    assert abs(values.astype(np.float64).mean() - 1.5) < 0.1
    assert values.min() < -1.9 and values.max() > 4.9


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64], ids=str)
def test_uniform_int_range(dtype):
    t = tf.random_uniform([5000], minval=-3, maxval=4, dtype=dtype, seed=8)
    values = tf.Session().run(t)
    assert t.dtype is dtype and values.dtype == dtype.np
    assert sorted(set(values.tolist())) == list(range(-3, 4))


def test_tensor_valued_parameters():
    mean, stddev = tf.placeholder(tf.float32, []), tf.constant(0.0)
    low, high = tf.constant(2.0), tf.constant(2.0)
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(tf.random_normal([3], mean, stddev), {mean: 4.0}), [4, 4, 4])
        np.testing.assert_array_equal(sess.run(tf.random_uniform([3], low, high)), [2, 2, 2])


def test_argument_errors():
    with pytest.raises(ValueError, match="maxval"):
        tf.random_uniform([2], dtype=tf.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="minval < maxval"):
        tf.random_uniform([2], minval=3, maxval=3, dtype=tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not supported"):
        tf.random_normal([2], dtype=tf.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-negative"):
        tf.random_normal([2, -1])


# -- seeds ---------------------------------------------------------------------------------------------
def test_each_run_draws_new_numbers():
    first, second = draw(NORMAL, runs=2, op_seed=9)
    assert not np.array_equal(first, second)


def test_constant_shaped_random_ops_are_not_folded_or_merged():
    a, b = tf.random_normal([4], seed=1), tf.random_normal([4], seed=1)
    with tf.Session() as sess:
        first, second = sess.run([a, b])
        assert not np.array_equal(sess.run(a), first)
    np.testing.assert_array_equal(first, second)  # same seeds, separate ops: the same stream, not one op


@pytest.mark.parametrize("graph_seed,op_seed", [(1, 2), (None, 2), (1, None)], ids=str)
def test_seeded_sequences_repeat_across_sessions(graph_seed, op_seed):
    first = draw(NORMAL, runs=3, seed=graph_seed, op_seed=op_seed)
    again = draw(NORMAL, runs=3, seed=graph_seed, op_seed=op_seed)
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.array_equal(first[0], first[1])


def test_unseeded_sequences_differ_across_sessions():
    assert not np.array_equal(draw(NORMAL)[0], draw(NORMAL)[0])


def test_op_and_graph_seeds_both_matter():
    base = draw(NORMAL, seed=1, op_seed=2)[0]
    assert not np.array_equal(base, draw(NORMAL, seed=1, op_seed=3)[0])
    assert not np.array_equal(base, draw(NORMAL, seed=4, op_seed=2)[0])


def test_graph_seed_gives_each_op_its_own_stream():
    tf.set_random_seed(11)
    a, b = tf.random_normal([100]), tf.random_normal([100])
    assert a.op.get_attr("seed") == 11 and a.op.get_attr("seed2") != b.op.get_attr("seed2")
    with tf.Session() as sess:
        first, second = sess.run([a, b])
    assert not np.array_equal(first, second)


def test_set_random_seed_sets_the_default_graph_seed():
    tf.set_random_seed(5)
    assert tf.get_default_graph().seed == 5
    t = tf.random_uniform([2], seed=0)
    assert (t.op.get_attr("seed"), t.op.get_attr("seed2")) == (5, 0)
    tf.reset_default_graph()
    t = tf.random_uniform([2])
    assert (t.op.get_attr("seed"), t.op.get_attr("seed2")) == (0, 0)  # unseeded: nondeterministic


_CHILD = """
import graphexec as tf
tf.set_random_seed(123)
a = tf.random_normal([5], seed=7)
b = tf.random_uniform([3], maxval=100, dtype=tf.int64)
with tf.Session() as sess:
    print(sess.run(a).tolist(), sess.run(a).tolist(), sess.run(b).tolist())
"""


def test_seeded_sequences_repeat_across_processes():
    outputs = [subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True,
                              timeout=60).stdout for _ in range(2)]
    assert outputs[0] == outputs[1] and outputs[0].strip()
