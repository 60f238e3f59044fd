"""Regenerate print_format.json: how real TensorFlow writes tensor values in tf.Print / tf.Assert (v1) and
tf.print (v2). Needs tensorflow; run: python tests/unit/golden/debug/make_print_golden.py"""
import json
import pathlib

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()

CASES = [  # (values, dtype, summarize)
    (np.arange(12).reshape(3, 4).tolist(), "float32", 3),
    (np.arange(12).reshape(3, 4).tolist(), "float32", 5),
    (np.arange(12).reshape(3, 4).tolist(), "int32", -1),
    (list(range(1, 9)), "int64", 3),
    ([1 / 3, float("inf"), float("-inf"), float("nan"), 1e20, 0.1, -2.5e-8], "float32", -1),
    ([1 / 3, 0.1, 1e300], "float64", -1),
    ([1.5, 1 / 3, 65504.0], "float16", 10),
    ([True, False, True], "bool", 2),
    (3.5, "float32", 3),
    (7, "uint8", 3),
    (np.arange(30).reshape(2, 3, 5).tolist(), "int32", 1),
    (np.arange(30).reshape(2, 3, 5).tolist(), "int32", 2),
    (np.arange(24).reshape(2, 3, 2, 2).tolist(), "int16", 3),
    (np.zeros((0,)).tolist(), "float32", 3),
    ([[1.0]], "float64", 3),
]


def main():
    out = []
    with tf.Session() as sess:
        for values, dtype, summarize in CASES:
            t = tf.constant(values, dtype=dtype)
            fail = tf.Assert(False, [t], summarize=summarize)
            try:
                sess.run(fail)
                raise AssertionError("the assert did not fail")
            except tf.errors.InvalidArgumentError as exc:
                line = [m for m in exc.message.splitlines() if m.startswith("assertion failed: [")][0]
                v1 = line[len("assertion failed: ["):-1]
            v2 = sess.run(tf.strings.format("{}", t, summarize=summarize)).decode()
            out.append({"values": values, "dtype": dtype, "summarize": summarize, "v1": v1, "v2": v2})
    path = pathlib.Path(__file__).with_name("print_format.json")
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
