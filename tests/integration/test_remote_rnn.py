"""Recurrent nets on a real `graphexec serve`: dynamic_rnn's While node and its gradient travel as an
ordinary graph and give the in-process numbers; an LSTM classifier trains to identical losses; the LSTM
digits tutorial gives identical results remotely and TensorFlow's accuracy (its golden file)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import graphexec as tf
from tests.tutorials.programs import lstm_classifier as tutorial
from tests.unit.golden.rnn.programs import PROGRAMS, cases_of, lstm_classifier, set_weights, train_losses

pytestmark = pytest.mark.timeout(300)

TUTORIAL_GOLDEN = os.path.join(os.path.dirname(__file__), os.pardir, "unit", "golden", "rnn",
                               "lstm_classifier_tutorial.json")


def _run_program(name, target):
    if target:  # the server keeps variables by name: other programs' variables of these names go
        tf.Session.reset(target)
    graph = tf.Graph()
    with graph.as_default():
        feeds, fetches = PROGRAMS[name](tf)
        with tf.Session(target, graph=graph) as sess:
            sess.run(tf.global_variables_initializer())
            set_weights(tf, sess)
            return {case: sess.run(fetches, {feeds[k]: v for k, v in values.items()})
                    for case, values in cases_of(name).items()}


@pytest.mark.parametrize("name", ["multi_rnn", "dynamic_sequence_length", "bidirectional_dynamic", "static_rnn"])
def test_programs_run_remotely_as_in_process(embedded, name):
    local, remote = _run_program(name, ""), _run_program(name, embedded)
    for case, want in local.items():
        for key, value in want.items():
            np.testing.assert_array_equal(remote[case][key], value, err_msg=f"{name} {case} {key}")


def test_lstm_training_remotely_as_in_process(embedded):
    runs = []
    for target in ("", embedded):
        if target:
            tf.Session.reset(target)
        graph = tf.Graph()
        with graph.as_default():
            feeds, loss, train_op = lstm_classifier(tf)
            with tf.Session(target, graph=graph) as sess:
                sess.run(tf.global_variables_initializer())
                set_weights(tf, sess)
                runs.append((train_losses(tf, sess, feeds, loss, train_op),
                             sess.run(tf.trainable_variables())))
    (local_losses, local_weights), (remote_losses, remote_weights) = runs
    np.testing.assert_array_equal(remote_losses, local_losses)
    for got, want in zip(remote_weights, local_weights):
        np.testing.assert_array_equal(got, want)
    assert local_losses[-1] < local_losses[0]


def test_lstm_digits_tutorial_matches_tensorflow_and_runs_remotely_the_same(embedded):
    with open(TUTORIAL_GOLDEN) as f:
        golden = json.load(f)
    local = tutorial.main()
    assert local["variables"] == golden["variables"]
    assert abs(local["test_accuracy"] - golden["test_accuracy"]) <= 0.02
    np.testing.assert_allclose(local["losses"], golden["losses"], rtol=1e-4, atol=1e-4)
    assert local["test_accuracy"] > 0.85
    remote = tutorial.main(embedded)
    assert remote == local


def test_mismatched_sequence_lengths_are_invalid_argument_and_the_server_stays_up(embedded):
    """sequence_length of the wrong batch size fails on the server before the loop, as TF1's check does:
    INVALID_ARGUMENT saying what was expected, and the next run on the same server works."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, None, 2])
        lengths = tf.placeholder(tf.int32, [None])
        outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.GRUCell(3), x, sequence_length=lengths, dtype=tf.float32)
        init = tf.global_variables_initializer()
    tf.Session.reset(embedded)
    with tf.Session(embedded, graph=graph) as sess:
        sess.run(init)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"Expected shape for Tensor rnn/sequence_length:0 is \[batch_size\]"):
            sess.run(outputs, {x: np.ones((2, 3, 2)), lengths: [3, 1, 2]})
        got = sess.run(outputs, {x: np.ones((2, 3, 2)), lengths: [3, 1]})
    assert got.shape == (2, 3, 3) and np.all(got[1, 1:] == 0) and np.all(got[0] != 0)
