"""Runs that repeat their fetches and feed keys reuse the resolution of both (BaseSession._prepared):
results keep each run's own structure and values, and feeds are still checked on every run."""
import collections

import numpy as np
import pytest

import graphexec as tf


@pytest.fixture
def program():
    graph = tf.Graph()
    with graph.as_default():
        a = tf.placeholder(tf.float32, [2], name="a")
        b = tf.placeholder(tf.float32, [2], name="b")
        total, difference = a + b, a - b
    with tf.Session(graph=graph) as sess:
        yield sess, a, b, total, difference


def test_repeated_runs_return_each_runs_values_in_the_fetched_structure(program):
    sess, a, b, total, difference = program
    for step in range(3):
        va, vb = np.full(2, step, np.float32), np.arange(2, dtype=np.float32)
        fetched = sess.run([total, difference], {a: va, b: vb})
        assert isinstance(fetched, list)
        np.testing.assert_array_equal(fetched[0], va + vb)
        np.testing.assert_array_equal(fetched[1], va - vb)
    as_tuple = sess.run((total, difference), {a: [1, 2], b: [3, 4]})  # same tensors, another structure
    assert isinstance(as_tuple, tuple) and as_tuple[1].tolist() == [-2, -2]
    Pair = collections.namedtuple("Pair", "total difference")
    pair = sess.run(Pair(total, difference), {a: [1, 2], b: [3, 4]})
    assert isinstance(pair, Pair) and pair.total.tolist() == [4, 6]
    assert sess.run({"t": total}, {a: [1, 2], b: [3, 4]})["t"].tolist() == [4, 6]
    assert sess.run(total, {a: [1, 2], b: [3, 4]}).tolist() == [4, 6]
    assert sess.run([[total], difference], {a: [1, 2], b: [3, 4]})[0][0].tolist() == [4, 6]


def test_feed_keys_in_another_order_or_by_name_feed_the_right_tensors(program):
    sess, a, b, _, difference = program
    assert sess.run(difference, {a: [5, 5], b: [1, 2]}).tolist() == [4, 3]
    assert sess.run(difference, {b: [1, 2], a: [5, 5]}).tolist() == [4, 3]
    assert sess.run(difference, {"b:0": [1, 2], "a": [5, 5]}).tolist() == [4, 3]
    assert sess.run(difference, {"b:0": [0, 0], "a": [7, 7]}).tolist() == [7, 7]


def test_every_run_checks_its_own_feeds(program):
    sess, a, b, total, _ = program
    assert sess.run(total, {a: [1, 2], b: [3, 4]}).tolist() == [4, 6]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"shape \[3\]"):
        sess.run(total, {a: [1, 2, 3], b: [3, 4]})
    with pytest.raises(TypeError):
        sess.run(total, {a: [1, 2], object(): [3, 4]})
    assert sess.run(total, {a: [1, 2], b: [3, 4]}).tolist() == [4, 6]


def test_a_shape_refined_after_a_run_is_checked_on_the_next():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 2], name="x")
        doubled = x * 2.0
    with tf.Session(graph=graph) as sess:
        assert sess.run(doubled, {x: np.ones((3, 2), np.float32)}).shape == (3, 2)
        x.set_shape([3, 2])  # the run above resolved its feed's type: this one must still hold
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"shape \[4, 2\] to tensor 'x:0'.*shape \[3,2\]"):
            sess.run(doubled, {x: np.ones((4, 2), np.float32)})
        assert sess.run(doubled, {x: np.ones((3, 2), np.float32)}).sum() == 12
