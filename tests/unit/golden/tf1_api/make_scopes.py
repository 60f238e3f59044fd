"""Regenerate scopes.json: the TF1 programs of tests/unit/tf1_programs.py run under real TensorFlow.

    python3 tests/unit/golden/tf1_api/make_scopes.py
"""
import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))

from tf1_programs import run_all  # noqa: E402


def main():
    tf1 = tf.compat.v1
    tf1.disable_v2_behavior()
    results = run_all(tf1)
    with open(os.path.join(HERE, "scopes.json"), "w") as f:
        json.dump({"tensorflow": tf.__version__, "results": results}, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
