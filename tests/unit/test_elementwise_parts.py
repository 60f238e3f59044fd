"""Large elementwise steps and fused chains run in parts over the intra-op threads
(graphexec/runtime/elementwise_parts.py) and give the same bits as numpy on the whole arrays."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from graphexec.runtime import intra_op

ROWS, COLS = 600, 1000  # 600,000 elements: above the MIN_ELEMENTS the tests set


@pytest.fixture
def parts_seen(monkeypatch):
    """Two intra-op threads; records the part counts of every split step."""
    seen = []
    run = intra_op.run
    monkeypatch.setattr(intra_op, "MIN_ELEMENTS", 1 << 18)

    def counting(count, body, ways_=None):
        seen.append(count)
        return run(count, body, ways_)

    monkeypatch.setattr(intra_op, "run", counting)
    yield seen


def _session(graph):
    return tf.Session(graph=graph, config=tf.ConfigProto(intra_op_parallelism_threads=2))


def test_a_fused_chain_with_a_bias_gives_numpys_bits(parts_seen):
    rng = np.random.default_rng(0)
    x_value = rng.normal(size=(ROWS, COLS)).astype(np.float32)
    bias_value = rng.normal(size=COLS).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [ROWS, COLS])
        y = tf.nn.relu(x * 1.5 + tf.constant(bias_value)) - 0.25
        positive = tf.cast(y > 0, tf.int32)
    with _session(g) as sess:
        got, got_positive = sess.run([y, positive], {x: x_value})
    expected = np.maximum(x_value * np.float32(1.5) + bias_value, np.float32(0)) - np.float32(0.25)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got_positive, (expected > 0).astype(np.int32))
    assert parts_seen and max(parts_seen) >= 2


def test_an_unknown_batch_dimension_and_a_row_broadcast_split_by_rows(parts_seen):
    rng = np.random.default_rng(1)
    x_value = rng.normal(size=(ROWS, COLS)).astype(np.float32)
    row_value = rng.normal(size=(1, COLS)).astype(np.float32)
    column_value = rng.normal(size=(ROWS, 1)).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, COLS])
        row = tf.placeholder(tf.float32, [1, COLS])
        column = tf.placeholder(tf.float32, [None, 1])
        y = tf.maximum(x - row, column)
    with _session(g) as sess:
        got = sess.run(y, {x: x_value, row: row_value, column: column_value})
    np.testing.assert_array_equal(got, np.maximum(x_value - row_value, column_value))
    assert parts_seen and max(parts_seen) >= 2


def test_relu_gradient_and_a_non_contiguous_feed(parts_seen):
    rng = np.random.default_rng(2)
    x_value = rng.normal(size=(COLS, ROWS)).astype(np.float32).T  # Fortran order: split by rows, not flat
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [ROWS, COLS])
        loss = tf.reduce_sum(tf.nn.relu(x) * 3.0)
        grad, = tf.gradients(loss, [x])
    with _session(g) as sess:
        got = sess.run(grad, {x: x_value})
    np.testing.assert_array_equal(got, np.where(x_value > 0, np.float32(3), np.float32(0)))
    assert parts_seen and max(parts_seen) >= 2


def test_small_steps_are_not_split(parts_seen):
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [100, 100])
        y = tf.nn.relu(x + 1.0)
    with _session(g) as sess:
        np.testing.assert_array_equal(sess.run(y, {x: np.ones((100, 100), np.float32)}), np.full((100, 100), 2.0))
    assert parts_seen == []
