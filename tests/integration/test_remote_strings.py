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
