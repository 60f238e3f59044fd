"""Regenerate digits.json: test accuracies of tests/unit/tf1_digits_programs.py trained under real TensorFlow.

    python3 tests/unit/golden/tf1_api/make_digits.py
"""
import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))

from tf1_digits_programs import train  # noqa: E402


def main():
    tf1 = tf.compat.v1
    tf1.disable_v2_behavior()
    accuracies = {model: train(tf1, model) for model in ("mlp", "cnn")}
    with open(os.path.join(HERE, "digits.json"), "w") as f:
        json.dump({"tensorflow": tf.__version__, "test_accuracy": accuracies}, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
