"""The ops added with the array-op split (cumsum/cumprod, gather_nd/scatter_nd, top_k) and their
gradients give the same numbers on a `graphexec serve` as in-process: their attrs and multi-output
results travel over the wire."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf

pytestmark = pytest.mark.timeout(120)


def _graph():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float64, [None, 4], name="x")
        scanned = tf.cumsum(x, axis=-1, exclusive=True, reverse=True) + tf.cumprod(x, axis=0)
        picked = tf.gather_nd(x, [[0, 3], [1, 1], [0, 3]])
        top = tf.nn.top_k(x, k=3)
        loss = tf.reduce_sum(scanned * scanned) + tf.reduce_sum(picked) + tf.reduce_sum(top.values ** 2)
        fetches = [scanned, picked, top.values, top.indices, tf.scatter_nd([[1], [0]], picked[:2], [3]),
                   tf.gradients(loss, x)[0]]
    return graph, x, fetches


def test_new_ops_run_remotely_as_in_process(embedded):
    feed = np.random.default_rng(0).standard_normal((2, 4))
    results = []
    for target in ("", embedded):
        graph, x, fetches = _graph()
        with tf.Session(target, graph=graph) as sess:
            results.append(sess.run(fetches, {x: feed}))
    local, remote = results
    for want, got in zip(local, remote):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(local[3], np.argsort(-feed, axis=-1, kind="stable")[:, :3])
