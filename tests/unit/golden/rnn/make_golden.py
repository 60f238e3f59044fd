"""Regenerate golden.json by running programs.py under real TensorFlow (TF1 graph mode, legacy Keras cells):

    TF_USE_LEGACY_KERAS=1 python3 tests/unit/golden/rnn/make_golden.py
"""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from programs import PROGRAMS, cases_of, lstm_classifier, set_weights, train_losses  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_v2_behavior()


def run_program(name, build):
    out = {}
    graph = tf.Graph()
    with graph.as_default():
        feeds, fetches = build(tf1)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            out["variables"] = set_weights(tf1, sess)
            for case, values in cases_of(name).items():
                got = sess.run(fetches, {feeds[k]: v for k, v in values.items()})
                out[case] = {k: v.tolist() for k, v in got.items()}
    return out


def main():
    golden = {name: run_program(name, build) for name, build in PROGRAMS.items()}
    graph = tf.Graph()
    with graph.as_default():
        feeds, loss, train_op = lstm_classifier(tf1)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            variables = set_weights(tf1, sess)
            golden["lstm_classifier_training"] = {"variables": variables,
                                                  "losses": train_losses(tf1, sess, feeds, loss, train_op)}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
    with open(path, "w") as out:
        json.dump(golden, out, indent=0, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()
