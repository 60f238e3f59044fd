"""clip_by_norm / clip_by_global_norm, scatter updates of variables, random_shuffle and multinomial."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors
from opcheck import check_grad, check_op

RNG = np.random.default_rng(0)


def _clip_by_norm(t, clip, axes=None):
    norm = np.sqrt(np.sum(t * t, axis=axes, keepdims=True))
    return (t * clip / np.maximum(norm, clip)).astype(t.dtype)


@pytest.mark.parametrize("dtype", [tf.float16, tf.float32, tf.float64], ids=str)
def test_clip_by_norm_matches_numpy(dtype):
    t = (RNG.standard_normal((3, 4)) * 3).astype(dtype.np)
    check_op(lambda x: tf.clip_by_norm(x, 2.0), lambda x: _clip_by_norm(x, 2.0), [t])
    check_op(lambda x: tf.clip_by_norm(x, 1.5, axes=[1]), lambda x: _clip_by_norm(x, 1.5, 1), [t])
    check_op(lambda x: tf.clip_by_norm(x, 100.0), lambda x: x, [t])  # within the norm: unchanged
    check_op(lambda x: tf.clip_by_norm(x, 1.0), lambda x: x, [np.zeros((2, 2), dtype.np)])


def test_clip_by_global_norm_and_gradients():
    a, b = RNG.standard_normal((2, 3)) * 4, RNG.standard_normal(5) * 4
    clipped, norm = tf.clip_by_global_norm([a, None, b], 2.5)
    assert clipped[1] is None
    with tf.Session() as sess:
        got_a, got_b, got_norm = sess.run([clipped[0], clipped[2], norm])
        unchanged = sess.run(tf.clip_by_global_norm([a], 1e6)[0][0])
        with_norm = sess.run(tf.clip_by_global_norm([a], 1.0, use_norm=np.float64(2.0))[0][0])
    want_norm = np.sqrt(np.sum(a * a) + np.sum(b * b))
    np.testing.assert_allclose(got_norm, want_norm)
    np.testing.assert_allclose(got_a, a * 2.5 / want_norm)
    np.testing.assert_allclose(got_b, b * 2.5 / want_norm)
    np.testing.assert_allclose(unchanged, a)
    np.testing.assert_allclose(with_norm, a / 2)
    np.testing.assert_allclose(sess_run(tf.global_norm([a, b])), want_norm)
    check_grad(lambda x, y: tf.clip_by_global_norm([x, y], 2.0)[0], [a, b])
    check_grad(lambda x: tf.clip_by_norm(x, 1.0, axes=[0]), [a])
    with pytest.raises(TypeError, match="sequence"):
        tf.clip_by_global_norm(tf.constant([1.0]), 1.0)


def sess_run(fetch):
    with tf.Session() as sess:
        return sess.run(fetch)


@pytest.mark.parametrize("dtype", [tf.int8, tf.uint8, tf.int32, tf.float16, tf.float64], ids=str)
def test_scatter_updates_of_variables(dtype):
    start = np.arange(8).reshape(4, 2).astype(dtype.np)
    v = tf.Variable(start)
    update = tf.scatter_update(v, [2, 0], np.array([[9, 9], [7, 7]], dtype.np))
    add = tf.scatter_add(v, [1, 1, 3], np.ones((3, 2), dtype.np))  # repeated rows accumulate
    sub = tf.scatter_sub(v, tf.constant([3], tf.int64), np.ones((1, 2), dtype.np))
    with tf.Session() as sess:
        sess.run(v.initializer)
        np.testing.assert_array_equal(sess.run(update), [[7, 7], [2, 3], [9, 9], [6, 7]])
        np.testing.assert_array_equal(sess.run(add), [[7, 7], [4, 5], [9, 9], [7, 8]])
        np.testing.assert_array_equal(sess.run(sub), [[7, 7], [4, 5], [9, 9], [6, 7]])
        result = sess.run(v)
    assert result.dtype == dtype.np
    np.testing.assert_array_equal(result, [[7, 7], [4, 5], [9, 9], [6, 7]])


def test_scatter_errors_name_the_variable():
    v = tf.Variable(np.zeros((3, 2), np.float32), name="table")
    with pytest.raises(errors.InvalidArgumentError, match="updates must have shape"):
        tf.scatter_update(v, [0], np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match="Variable"):
        tf.scatter_add(tf.zeros([2]), [0], [1.0])
    with tf.Session() as sess:
        sess.run(v.initializer)
        with pytest.raises(errors.InvalidArgumentError, match="variable 'table'"):
            sess.run(tf.scatter_update(v, [3], np.zeros((1, 2), np.float32)))


def test_random_shuffle_is_a_seeded_permutation():
    tf.set_random_seed(5)
    values = np.arange(20).reshape(10, 2)
    shuffled = tf.random_shuffle(values, seed=1)
    with tf.Session() as sess:
        first, second = sess.run(shuffled), sess.run(shuffled)
    with tf.Session() as sess:
        again = sess.run(shuffled)
    np.testing.assert_array_equal(np.sort(first[:, 0]), values[:, 0])
    np.testing.assert_array_equal(first[:, 1] - first[:, 0], np.ones(10))  # rows move whole
    assert not np.array_equal(first, second)  # each run draws anew
    np.testing.assert_array_equal(first, again)  # a seeded graph repeats across sessions
    assert tf.random.shuffle is tf.random_shuffle


def test_multinomial_follows_the_distribution():
    tf.set_random_seed(3)
    logits = np.log([[0.2, 0.3, 0.5], [0.98, 0.01, 0.01]])
    samples = tf.multinomial(logits, 4000)
    categorical = tf.random.categorical(logits.astype(np.float32), 5, output_dtype=tf.int32)
    assert samples.shape.as_list() == [2, 4000] and samples.dtype is tf.int64
    with tf.Session() as sess:
        drawn, small = sess.run([samples, categorical])
    frequencies = np.stack([np.bincount(row, minlength=3) / row.size for row in drawn])
    np.testing.assert_allclose(frequencies, np.exp(logits), atol=0.03)
    assert small.dtype == np.int32 and small.shape == (2, 5) and small.min() >= 0 and small.max() <= 2
    with pytest.raises(errors.InvalidArgumentError, match="matrix"):
        tf.multinomial([0.5, 0.5], 3)
