"""An LSTM reads each 8x8 digit of scikit-learn's bundled set as a sequence of 8 rows (8 time steps of 8
pixels) and classifies it from its last output: tf.nn.dynamic_rnn over a BasicLSTMCell, a dense layer,
softmax cross-entropy, Adam.

    python3 tests/tutorials/programs/lstm_classifier.py                  # in this process
    python3 tests/tutorials/programs/lstm_classifier.py grpc://host:port  # on a graphexec serve

`main(target)` returns {"losses": [...], "test_accuracy": ...}. `train(tf, session)` builds and trains the
same program under graphexec or real TensorFlow (`tf.compat.v1`): the weights start from the same seeded
numpy values in both, and the minibatches come from numpy, so the two runs can be compared number for number.
"""
from __future__ import annotations

import json
import sys

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import graphexec as tf

UNITS, BATCH, STEPS, LEARNING_RATE = 32, 64, 200, 0.01


def data():
    digits = load_digits()
    rows = (digits.images / 16.0).astype(np.float32)  # [n, 8 time steps, 8 pixels]
    return train_test_split(rows, digits.target.astype(np.int32), test_size=0.25, random_state=0)


def build(tf):
    images = tf.placeholder(tf.float32, [None, None, 8], name="images")  # the time dimension is fed
    labels = tf.placeholder(tf.int32, [None], name="labels")
    cell = tf.nn.rnn_cell.BasicLSTMCell(UNITS)
    outputs, state = tf.nn.dynamic_rnn(cell, images, dtype=tf.float32)
    logits = tf.layers.dense(state.h, 10, name="logits")
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    train_op = tf.train.AdamOptimizer(LEARNING_RATE).minimize(loss)
    correct = tf.equal(tf.cast(tf.argmax(logits, 1), tf.int32), labels)
    accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
    return images, labels, loss, train_op, accuracy


def initial_weights(variables):
    """Seeded uniform values in [-0.2, 0.2) for the trainable variables, in sorted-name order."""
    rng = np.random.default_rng(2026)
    return {v.name: rng.uniform(-0.2, 0.2, [int(d) for d in v.shape]).astype(np.float32)
            for v in sorted(variables, key=lambda v: v.name)}


def train(tf, session):
    """Build the program in a new graph and train it in `session(graph)`; returns the results dict."""
    x_train, x_test, y_train, y_test = data()
    graph = tf.Graph()
    with graph.as_default():
        images, labels, loss, train_op, accuracy = build(tf)
        init = tf.global_variables_initializer()
        with session(graph) as sess:
            sess.run(init)
            weights = initial_weights(tf.trainable_variables())
            for v in tf.trainable_variables():
                v.load(weights[v.name], sess)
            order = np.random.default_rng(0)
            losses = []
            for _ in range(STEPS):
                batch = order.choice(len(x_train), BATCH, replace=False)
                losses.append(float(sess.run([loss, train_op], {images: x_train[batch], labels: y_train[batch]})[0]))
            test_accuracy = float(sess.run(accuracy, {images: x_test, labels: y_test}))
    return {"variables": sorted(weights), "losses": losses, "test_accuracy": test_accuracy}


def main(target: str = "") -> dict:
    if target:  # the server keeps variables by name across sessions: start from an empty container, as TF1
        tf.Session.reset(target)
    return train(tf, lambda graph: tf.Session(target, graph=graph))


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "")))
