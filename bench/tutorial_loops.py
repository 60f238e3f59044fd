"""Two classic TF1 training loops, in process and through an embedded `graphexec serve`, alternating.

    python -m bench.tutorial_loops [--rounds 3]

W3 alone hides what a real program pays per step remotely, so this times two loops written as the
tutorials write them: the MNIST autoencoder (784-256-128-256-784, sigmoid units, RMSProp, batch 256,
one train op and the loss fetched per step) on random pixels, and linear regression fitted one
(x, y) pair per run (17 pairs per epoch, SGD). Prints ms per step/run each way and the remote/in-process
ratio, per round, then medians.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bench.systems.graphexec_sys import start_serve


def autoencoder(tf, target: str, steps: int) -> float:
    """Milliseconds per training step."""
    rng = np.random.default_rng(0)
    images = rng.random((steps * 256 // 4, 784), dtype=np.float32)  # reused 4 times, like epochs
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(1)
        x = tf.placeholder(tf.float32, [None, 784])
        hidden = x
        for size in (256, 128, 256, 784):
            weights = tf.Variable(tf.random_normal([int(hidden.shape[1]), size], stddev=0.05))
            hidden = tf.nn.sigmoid(tf.matmul(hidden, weights) + tf.Variable(tf.zeros([size])))
        loss = tf.reduce_mean(tf.pow(x - hidden, 2))
        train = tf.train.RMSPropOptimizer(0.01).minimize(loss)
        init = tf.global_variables_initializer()
    with tf.Session(target, graph=graph) as sess:
        sess.run(init)
        batches = [images[i:i + 256] for i in range(0, len(images), 256)]
        sess.run([train, loss], {x: batches[0]})
        started = time.perf_counter()
        for step in range(steps):
            _, value = sess.run([train, loss], {x: batches[step % len(batches)]})
        elapsed = time.perf_counter() - started
    assert np.isfinite(value)
    return elapsed / steps * 1e3


def linear_regression(tf, target: str, epochs: int) -> float:
    """Milliseconds per run (one pair fed per run)."""
    xs = np.array([3.3, 4.4, 5.5, 6.71, 6.93, 4.168, 9.779, 6.182, 7.59, 2.167, 7.042, 10.791, 5.313, 7.997,
                   5.654, 9.27, 3.1], np.float32)
    ys = (0.25 * xs + 0.8 + np.linspace(-0.3, 0.3, len(xs))).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        x, y = tf.placeholder(tf.float32), tf.placeholder(tf.float32)
        weight, bias = tf.Variable(0.1, name="weight"), tf.Variable(0.0, name="bias")
        cost = tf.reduce_sum(tf.pow(x * weight + bias - y, 2)) / (2 * len(xs))
        train = tf.train.GradientDescentOptimizer(0.01).minimize(cost)
        init = tf.global_variables_initializer()
    with tf.Session(target, graph=graph) as sess:
        sess.run(init)
        started = time.perf_counter()
        for _ in range(epochs):
            for px, py in zip(xs, ys):
                sess.run(train, {x: px, y: py})
        elapsed = time.perf_counter() - started
        assert 0.0 < sess.run(weight) < 1.0
    return elapsed / (epochs * len(xs)) * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200, help="autoencoder steps per measurement")
    parser.add_argument("--epochs", type=int, default=100, help="linear-regression epochs per measurement")
    args = parser.parse_args(argv)
    import graphexec as tf

    server = start_serve("tutorial-loops-serve")
    target = server.match.group(1)
    figures: dict[str, list[tuple[float, float]]] = {"autoencoder ms/step": [], "linear regression ms/run": []}
    try:
        for round_number in range(args.rounds):
            for name, loop, size in (("autoencoder ms/step", autoencoder, args.steps),
                                     ("linear regression ms/run", linear_regression, args.epochs)):
                order = ("", target) if round_number % 2 == 0 else (target, "")
                timed = {where: loop(tf, where, size) for where in order}
                figures[name].append((timed[""], timed[target]))
                print(f"round {round_number + 1}: {name}: in-process {timed['']:.3f}, remote {timed[target]:.3f}, "
                      f"{timed[target] / timed['']:.2f}x", flush=True)
    finally:
        server.stop()
    print("| loop | in-process | remote (serve) | remote/in-process |")
    print("| --- | --- | --- | --- |")
    for name, pairs in figures.items():
        local = statistics.median(p[0] for p in pairs)
        remote = statistics.median(p[1] for p in pairs)
        ratio = statistics.median(p[1] / p[0] for p in pairs)
        print(f"| {name} | {local:.3f} | {remote:.3f} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
