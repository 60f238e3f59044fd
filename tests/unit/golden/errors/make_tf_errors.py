"""Regenerates tf_errors.json: what TensorFlow 1 (tf.compat.v1) does with the bad inputs of
tests/unit/test_user_errors.py. Needs tensorflow; CI reads only the JSON.

    python3 tests/unit/golden/errors/make_tf_errors.py
"""
import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_v2_behavior()


def outcome(build_and_run):
    """{"raises": class name, "message": ...} or {"value": the result as a list}."""
    with tf1.Graph().as_default():
        try:
            value = build_and_run()
        except Exception as exc:  # the oracle: record whatever it raises
            return {"raises": type(exc).__name__, "message": str(exc).splitlines()[0]}
    return {"value": np.asarray(value).tolist()}


def feed(dtype, shape, value):
    def run():
        x = tf1.placeholder(dtype, shape, name="x")
        with tf1.Session() as sess:
            return sess.run(x, {x: value})

    return run


def matmul_mismatch():
    a = tf1.placeholder(tf.float32, [None, None], name="a")
    b = tf1.placeholder(tf.float32, [None, None], name="b")
    product = tf.matmul(a, b, name="product")
    with tf1.Session() as sess:
        return sess.run(product, {a: np.ones((2, 3)), b: np.ones((4, 5))})


CASES = {
    "ragged_feed": feed(tf.float32, [None, 3], [[1, 2, 3], [4, 5]]),
    "python_int_out_of_int16": feed(tf.int16, [], 70000),
    "python_int_beyond_int64": feed(tf.int16, [], 2**70),
    "python_list_out_of_int16": feed(tf.int16, [2], [70000, 1]),
    "numpy_int64_array_to_int16": feed(tf.int16, [2], np.array([70000, 1])),
    "placeholder_shape_beyond_int64": lambda: tf1.placeholder(tf.float32, [2**70]),
    "zeros_shape_beyond_int64": lambda: tf.zeros([2**70]),
    "matmul_mismatch_at_run_time": matmul_mismatch,
}

if __name__ == "__main__":
    golden = {name: outcome(case) for name, case in CASES.items()}
    path = pathlib.Path(__file__).with_name("tf_errors.json")
    path.write_text(json.dumps({"tensorflow": tf.__version__, "cases": golden}, indent=2) + "\n")
    print(path.read_text())
