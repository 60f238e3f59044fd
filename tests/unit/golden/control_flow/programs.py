"""Classic TF1 control-flow programs, written once against the TF1 API so that the same function builds
them under real TensorFlow (`tf.compat.v1`, by make_golden.py) and under graphexec (by the test).

Each builder takes the module `tf` and returns (feeds: {name: placeholder}, fetches: {name: tensor}).
"""
from __future__ import annotations

import numpy as np

# The feeds each program is run with, by case name.
CASES = {
    "while_program": [{"x": np.array([0.5, -1.5, 2.0]), "a": np.array(0.75)},
                      {"x": np.array([1.0, 0.25, -0.5]), "a": np.array(-2.0)}],
    "cond_program": [{"x": np.array([0.5, -1.5, 2.0]), "a": np.array(0.75)},
                     {"x": np.array([-1.0, 0.25, -0.5]), "a": np.array(-2.0)}],
    "loops_program": [{"x": np.linspace(-1.0, 1.5, 12).reshape(4, 3), "w": np.array([[0.5, -0.25], [1.0, 0.75],
                                                                                   [-0.5, 0.25]])}],
}


def while_program(tf):
    """A Horner-style recurrence, a Newton square root and a countdown with early exit in one graph."""
    x = tf.placeholder(tf.float64, [3], name="x")
    a = tf.placeholder(tf.float64, [], name="a")

    def body(i, acc, total):
        acc = acc * x + a * tf.cast(i, tf.float64)
        return i + 1, acc, total + tf.reduce_sum(acc)

    _, acc, total = tf.while_loop(lambda i, acc, total: i < 5, body,
                                  [tf.constant(0), tf.ones([3], tf.float64), tf.constant(0.0, tf.float64)])
    target = x * x + 1.0
    root = tf.while_loop(lambda k, y: k < 6, lambda k, y: (k + 1, 0.5 * (y + target / y)), [0, target])[1]
    halvings = tf.while_loop(lambda v, n: tf.logical_and(v > 0.1, n < 20), lambda v, n: (v / 2.0, n + 1),
                             [tf.abs(a) + 1.0, 0])[1]
    loss = total + tf.reduce_sum(root * acc)
    dx, da = tf.gradients(loss, [x, a])
    return {"x": x, "a": a}, {"acc": acc, "total": total, "root": root, "halvings": halvings, "loss": loss,
                              "dx": dx, "da": da}


def cond_program(tf):
    """Branches returning tuples, capturing outer tensors, nested in each other, and differentiated."""
    x = tf.placeholder(tf.float64, [3], name="x")
    a = tf.placeholder(tf.float64, [], name="a")
    scale = tf.reduce_sum(x * x)
    first, second = tf.cond(tf.reduce_sum(x) > 0, lambda: (x * a, tf.sin(x) * scale),
                            lambda: (x - a, tf.cos(x) * a))
    inner = tf.cond(a > 0,
                    lambda: tf.cond(scale > 3.0, lambda: scale * a, lambda: scale - a),
                    lambda: a * a)
    loss = tf.reduce_sum(first * second) + inner
    dx, da = tf.gradients(loss, [x, a])
    return {"x": x, "a": a}, {"first": first, "second": second, "inner": inner, "loss": loss, "dx": dx, "da": da}


def loops_program(tf):
    """map_fn, scan, foldl/foldr, a case, and an RNN over TensorArrays (dynamic_rnn's loop), differentiated."""
    x = tf.placeholder(tf.float64, [4, 3], name="x")
    w = tf.placeholder(tf.float64, [3, 2], name="w")
    norms = tf.map_fn(lambda row: tf.reduce_sum(row * row), x)
    running = tf.scan(lambda acc, row: acc * 0.5 + row, x)
    folded = tf.foldl(lambda acc, row: acc * row + 1.0, x, initializer=tf.ones([3], tf.float64))
    back = tf.foldr(lambda acc, row: acc - row * acc, x)
    picked = tf.case([(tf.reduce_sum(x) > 100.0, lambda: tf.reduce_sum(x)),
                      (tf.reduce_max(x) > 1.0, lambda: tf.reduce_max(x) * 2.0)], default=lambda: tf.reduce_min(x))
    steps = tf.shape(x)[0]
    inputs = tf.TensorArray(tf.float64, size=steps).unstack(x)

    def cell(t, h, out):
        h = tf.tanh(tf.matmul(tf.expand_dims(inputs.read(t), 0), w) + h)
        return t + 1, h, out.write(t, h[0])

    _, last, outputs = tf.while_loop(lambda t, h, out: t < steps, cell,
                                     (0, tf.zeros([1, 2], tf.float64), tf.TensorArray(tf.float64, size=steps)))
    states = outputs.stack()
    loss = (tf.reduce_sum(norms * folded[0]) + tf.reduce_sum(running * running) + tf.reduce_sum(back)
            + picked + tf.reduce_sum(states * states) + tf.reduce_sum(last))
    dx, dw = tf.gradients(loss, [x, w])
    return {"x": x, "w": w}, {"norms": norms, "running": running, "folded": folded, "back": back, "picked": picked,
                              "states": states, "loss": loss, "dx": dx, "dw": dw}


PROGRAMS = {"while_program": while_program, "cond_program": cond_program, "loops_program": loops_program}
