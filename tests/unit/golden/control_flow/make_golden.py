"""Regenerate golden.json by running programs.py under real TensorFlow (TF1 graph mode):

    python3 tests/unit/golden/control_flow/make_golden.py
"""
from __future__ import annotations

import json
import os
import sys

import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from programs import CASES, PROGRAMS  # noqa: E402

tf.compat.v1.disable_v2_behavior()


def main():
    golden = {}
    for name, build in PROGRAMS.items():
        golden[name] = []
        for case in CASES[name]:
            graph = tf.Graph()
            with graph.as_default():
                feeds, fetches = build(tf.compat.v1)
                with tf.compat.v1.Session() as sess:
                    values = sess.run(fetches, {feeds[k]: v for k, v in case.items()})
            golden[name].append({k: v.tolist() for k, v in values.items()})
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
    with open(path, "w") as out:
        json.dump(golden, out, indent=1, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()
