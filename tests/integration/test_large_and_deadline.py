"""Tensors beyond gRPC's and protobuf's limits, and deadlines that stop a run at an op boundary."""
from __future__ import annotations

import time

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors
from graphexec.rpc import codec

from conftest import deadline_model  # tests/integration is on sys.path (rootdir-relative conftest)

pytestmark = pytest.mark.timeout(240)


def test_one_gib_float32_feed_round_trips(embedded):
    count = (1 << 30) // 4
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None])
        y = tf.identity(x)
        value = np.arange(count, dtype=np.float32)
        with tf.Session(embedded) as sess:
            result = sess.run(y, {x: value})
    assert result.shape == (count,) and result.dtype == np.float32
    assert np.array_equal(result, value)


def test_tensors_just_above_the_chunk_size_go_in_parts_both_ways(embedded):
    count = codec.CHUNK_BYTES // 4 + 3  # two parts: one full chunk and 12 bytes
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [count])
        y = x * 2.0
        with tf.Session(embedded) as sess:
            value = np.random.default_rng(1).random(count, dtype=np.float32)
            np.testing.assert_array_equal(sess.run(y, {x: value}), value * 2)
            results = list(sess.stream(y, ({x: value + i} for i in range(2))))
    np.testing.assert_array_equal(results[1], (value + 1) * 2)


def test_a_50ms_deadline_stops_a_long_run_and_frees_the_worker(embedded):
    graph, x, counter, long_update, quick_update, value = deadline_model()
    with tf.Session(embedded, graph=graph, config=tf.ConfigProto(container="deadline")) as sess:
        sess.run(counter.initializer)
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceededError):
            sess.run(long_update, {x: value}, options=tf.RunOptions(timeout_in_ms=50))
        assert time.monotonic() - started < 1.0
        started = time.monotonic()
        # An update of the same container waits for the container's lock: it is free at once.
        assert sess.run(quick_update) == 1  # and the stopped run applied nothing
        assert time.monotonic() - started < 1.0
