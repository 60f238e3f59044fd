"""The recurrent programs of golden/rnn/programs.py give real TensorFlow's numbers (outputs, final states
and gradients, with the same weights loaded) and TF1's variable names; kept in golden.json by make_golden.py."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import graphexec as tf
from tests.unit.golden.rnn.programs import PROGRAMS, cases_of, lstm_classifier, set_weights, train_losses

with open(os.path.join(os.path.dirname(__file__), "golden", "rnn", "golden.json")) as _f:
    GOLDEN = json.load(_f)


def _run(name, build):
    graph = tf.Graph()
    with graph.as_default():
        feeds, fetches = build(tf)
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer())
            names = set_weights(tf, sess)
            results = {case: sess.run(fetches, {feeds[k]: v for k, v in values.items()})
                       for case, values in cases_of(name).items()}
    return names, results


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_matches_tensorflow(name):
    want = GOLDEN[name]
    names, results = _run(name, PROGRAMS[name])
    assert names == want["variables"]
    for case, got in results.items():
        assert set(got) == set(want[case])
        for key, value in want[case].items():
            np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-5, err_msg=f"{name} {case} {key}")


def test_contrib_static_bidirectional_is_tf_nn_one():
    """tf.contrib.rnn's static_bidirectional_rnn builds the same program (same names and numbers)."""
    want = GOLDEN["static_bidirectional"]
    names, results = _run("static_bidirectional", lambda tf: PROGRAMS["static_bidirectional"](
        tf, static_bidirectional_rnn=tf.contrib.rnn.static_bidirectional_rnn))
    assert names == want["variables"]
    np.testing.assert_allclose(results["steps5"]["outputs"], want["steps5"]["outputs"], rtol=1e-5, atol=1e-5)


def test_lstm_classifier_trains_as_tensorflow():
    want = GOLDEN["lstm_classifier_training"]
    graph = tf.Graph()
    with graph.as_default():
        feeds, loss, train_op = lstm_classifier(tf)
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer())
            assert set_weights(tf, sess) == want["variables"]
            losses = train_losses(tf, sess, feeds, loss, train_op)
    np.testing.assert_allclose(losses, want["losses"], rtol=1e-5, atol=1e-5)
    assert losses[-1] < losses[0] * 0.6
