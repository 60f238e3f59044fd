"""Regenerate lstm_classifier_tutorial.json: the LSTM digits classifier of
tests/tutorials/programs/lstm_classifier.py trained by real TensorFlow (TF1 graph mode, legacy Keras cells)
from the same initial weights and minibatches:

    python3 tests/unit/golden/rnn/make_lstm_classifier_golden.py
"""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tutorials", "programs"))
import lstm_classifier  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_v2_behavior()

if __name__ == "__main__":
    results = lstm_classifier.train(tf1, lambda graph: tf1.Session(graph=graph))
    path = os.path.join(HERE, "lstm_classifier_tutorial.json")
    with open(path, "w") as out:
        json.dump(results, out, indent=1)
        out.write("\n")
    print(results["test_accuracy"])
