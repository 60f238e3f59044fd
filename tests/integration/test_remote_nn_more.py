"""The tf.nn additions run on a `graphexec serve` as in-process: LRN and its gradient, in_top_k, and the
seeded candidate sampler behind sampled_softmax_loss (same seed, same samples, same losses)."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf

pytestmark = pytest.mark.timeout(120)


def _graph():
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(5)
        img = tf.placeholder(tf.float32, [None, 2, 2, 5], name="img")
        normalized = tf.nn.lrn(img, depth_radius=1, alpha=0.5)
        weights = tf.constant(np.linspace(-1, 1, 40, dtype=np.float32).reshape(10, 4))
        inputs = tf.reshape(img[:, 0, 0, :4], [-1, 4])
        loss = tf.nn.sampled_softmax_loss(weights, tf.zeros([10]), [[1], [7]], inputs, num_sampled=3, num_classes=10)
        fetches = [normalized, tf.gradients(tf.reduce_sum(normalized * img), img)[0],
                   tf.nn.in_top_k(tf.reshape(img, [2, -1]), [0, 3], 4), loss]
    return graph, img, fetches


def test_nn_additions_run_remotely_as_in_process(embedded):
    feed = np.random.default_rng(0).standard_normal((2, 2, 2, 5)).astype(np.float32)
    results = []
    for target in ("", embedded):
        graph, img, fetches = _graph()
        with tf.Session(target, graph=graph) as sess:
            results.append([sess.run(fetches, {img: feed}) for _ in range(2)])
    for local, remote in zip(*results):
        for want, got in zip(local, remote):
            np.testing.assert_array_equal(got, want)
    assert not np.array_equal(results[0][0][3], results[0][1][3])  # the sampler draws anew each run
