"""tf.string and the ops of the TF1-breadth batch (strings, segment/linalg/mask ops) give the same
results from a real `graphexec serve` process as in-process: string constants, feeds and fetches
travel as length-prefixed bytes, and string variables live in the server's store."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors

pytestmark = pytest.mark.timeout(120)


def _string_graph():
    graph = tf.Graph()
    with graph.as_default():
        hello = tf.constant("Hello, TensorFlow!")
        words = tf.placeholder(tf.string, [None], name="words")
        split = tf.string_split(words)
        names = tf.Variable(["x", "y"], name="names")
        fetches = {"hello": hello, "words": words, "joined": tf.strings.join([words, hello], separator=" "),
                   "length": tf.strings.length(words), "equal": tf.equal(words, "b c"),
                   "split": split, "number": tf.strings.to_number(tf.as_string(tf.constant([1.5, -2.0]))),
                   "upper_names": tf.assign(names, tf.strings.upper(names))}
    return graph, words, fetches


def test_strings_remote_equal_in_process(embedded):
    feed = ["a", "b c", "\u00e9", ""]
    results = []
    for target in ("", embedded):
        graph, words, fetches = _string_graph()
        with tf.Session(target, graph=graph) as sess:
            sess.run(tf.variables_initializer(graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)))
            results.append(sess.run(fetches, {words: feed}))
    local, remote = results
    assert remote["hello"] == local["hello"] == b"Hello, TensorFlow!"
    for key in ("words", "joined", "length", "equal", "number", "upper_names"):
        assert remote[key].dtype == local[key].dtype, key
        np.testing.assert_array_equal(remote[key], local[key], err_msg=key)
    for want, got in zip(local["split"], remote["split"]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(remote["joined"][2], "\u00e9 Hello, TensorFlow!".encode())
    np.testing.assert_array_equal(remote["upper_names"], [b"X", b"Y"])


def test_large_string_feed_and_bad_string_input_remotely(embedded):
    words = tf.placeholder(tf.string, [None])
    big = np.array([b"xyz" * (i % 7) for i in range(300_000)], dtype=object)  # beyond one 1 MiB part
    with tf.Session(embedded) as sess:
        lengths, echoed = sess.run([tf.strings.length(words), words], {words: big})
        np.testing.assert_array_equal(lengths, [3 * (i % 7) for i in range(300_000)])
        np.testing.assert_array_equal(echoed, big)
        with pytest.raises(errors.InvalidArgumentError, match="could not correctly convert string"):
            sess.run(tf.strings.to_number(words), {words: ["1", "nope"]})
        assert sess.run(tf.strings.join(["still", "up"], separator=" ")) == b"still up"


def _new_ops_graph():
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(11)
        x = tf.placeholder(tf.float64, [None, 3], name="x")
        matrix = tf.matmul(x, x, transpose_a=True) + 3 * tf.eye(3, dtype=tf.float64)
        table = tf.Variable(np.zeros((4, 3)), name="table")
        segments = tf.segment_sum(x, [0, 0, 1, 2])
        masked = tf.boolean_mask(x, tf.greater(tf.reduce_sum(x, 1), 0))
        product = tf.einsum("ij,jk->ik", x, matrix)
        clipped, norm = tf.clip_by_global_norm([product, segments], 1.0)
        loss = tf.reduce_sum(tf.matrix_inverse(matrix)) + tf.reduce_sum(tf.cholesky(matrix)) + \
            tf.reduce_sum(clipped[0]) + tf.reduce_sum(tf.tensordot(segments, matrix, 1)) + tf.reduce_sum(masked)
        fetches = {"segments": segments, "masked": masked, "product": product, "norm": norm,
                   "unique": tf.unique(tf.constant([4, 2, 4, 1]))[1], "mask": tf.sequence_mask([1, 3], 4),
                   "det": tf.matrix_determinant(matrix), "solve": tf.matrix_solve(matrix, tf.ones([3, 1], tf.float64)),
                   "grad": tf.gradients(loss, x)[0], "scatter": tf.scatter_add(table, [1, 1], x[:2]),
                   "shuffle": tf.random_shuffle(tf.range(10), seed=3),
                   "multinomial": tf.multinomial(tf.zeros([2, 5]), 6, seed=4)}
    return graph, x, table, fetches


def test_new_ops_remote_equal_in_process(embedded):
    feed = np.random.default_rng(1).standard_normal((4, 3))
    results = []
    for target in ("", embedded):
        graph, x, table, fetches = _new_ops_graph()
        with tf.Session(target, graph=graph) as sess:
            sess.run(table.initializer)
            results.append(sess.run(fetches, {x: feed}))
    local, remote = results
    for key in local:
        assert remote[key].dtype == local[key].dtype, key
        np.testing.assert_allclose(remote[key], local[key], rtol=1e-12, err_msg=key)
    np.testing.assert_allclose(local["scatter"][1], feed[0] + feed[1])
    np.testing.assert_array_equal(local["unique"], [0, 1, 0, 2])


def test_string_variables_live_in_redis_across_sessions(redis_server, serve, worker, wait_for_workers):
    target = serve("--redis", redis_server.url)
    worker(redis_server.url)
    wait_for_workers(target, 1)
    graph = tf.Graph()
    with graph.as_default():
        names = tf.Variable(["a", "b"], name="names")
        table = tf.Variable(np.zeros((3,), np.int8), name="table")
        grow = tf.assign(names, tf.strings.join([names, tf.as_string(tf.cast(table[:2], tf.int32))], separator="-"))
        bump = tf.scatter_add(table, [0, 0, 1], np.array([1, 2, 5], np.int8))
    with tf.Session(target, graph=graph) as sess:
        sess.run([names.initializer, table.initializer])
        sess.run(bump)
        sess.run(grow)
    with tf.Session(target, graph=graph) as sess:  # a new session reads the values the store kept
        got_names, got_table = sess.run([names, table])
    np.testing.assert_array_equal(got_names, [b"a-3", b"b-5"])
    assert got_table.dtype == np.int8
    np.testing.assert_array_equal(got_table, [3, 5, 0])
