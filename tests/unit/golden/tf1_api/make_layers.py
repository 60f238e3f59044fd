"""Regenerate layers.npz: the tf.layers programs of tests/unit/tf1_layer_programs.py under real TensorFlow.

    python3 tests/unit/golden/tf1_api/make_layers.py
"""
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))

from tf1_layer_programs import run_all  # noqa: E402


def main():
    tf1 = tf.compat.v1
    tf1.disable_v2_behavior()
    np.savez_compressed(os.path.join(HERE, "layers.npz"), **run_all(tf1))


if __name__ == "__main__":
    main()
