"""compiler/fuse_products.py: a matrix product and the bias and ReLU after it become one _FusedMatMul step, and
a product read only by a gradient-descent update becomes one _MatMulApplyGradientDescent step; both give the
bits of the steps they replace, split over threads or not; anything else reading the parts keeps them apart."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from graphexec import ir
from graphexec.compiler import pipeline, rowwise
from graphexec.compiler.fuse_products import fuse_product_epilogues

RNG = np.random.default_rng(0)
UNFUSED = tuple(p for p in pipeline.PASSES if p is not fuse_product_epilogues)


def _plan_ops(fetches, feeds, targets=()):
    graph = tf.get_default_graph()
    program = ir.Program(graph.nodes(), tuple(t.name for t in feeds), tuple(t.name for t in fetches),
                         tuple(t.name for t in targets))
    return pipeline.optimize(program, check=True).nodes


def _matrix(*shape):
    return RNG.normal(size=shape).astype(np.float32)


BUILDERS = {
    "relu(x @ w + b)": lambda x, w, b: tf.nn.relu(tf.matmul(x, w) + b),
    "relu(bias_add)": lambda x, w, b: tf.nn.relu(tf.nn.bias_add(tf.matmul(x, w), b)),
    "b + x @ w": lambda x, w, b: b + tf.matmul(x, w),
    "relu(b + x @ w.T.T)": lambda x, w, b: tf.nn.relu(b + tf.matmul(x, tf.transpose(w), transpose_b=True)),
}


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
@pytest.mark.parametrize("rows, inner, columns", [(5, 7, 3), (128, 784, 256)])  # the second splits
def test_bias_and_relu_fuse_into_the_product_with_the_same_bits(build, rows, inner, columns, two_threads,
                                                                 monkeypatch):
    x = tf.placeholder(tf.float32, [None, inner])
    y = build(x, tf.Variable(_matrix(inner, columns)), tf.Variable(_matrix(columns)))
    fused = [n for n in _plan_ops([y], [x]) if n.op == "_FusedMatMul"]
    assert len(fused) == 1 and fused[0].name == y.op.name
    assert fused[0].attrs["activation"] == ("Relu" if y.op.type == "Relu" else "")
    features = _matrix(rows, inner)
    features[0, :2] = (np.nan, np.inf)
    init = tf.global_variables_initializer()
    with tf.Session() as sess:
        sess.run(init)
        metadata = tf.RunMetadata()
        got = [sess.run(y, {x: features}, run_metadata=metadata) for _ in range(6)]  # split and whole
        assert y.op.name in metadata.executed_nodes
        w, b = sess.run(tf.global_variables())
    monkeypatch.setattr(pipeline, "PASSES", UNFUSED)
    with tf.Session() as sess:
        sess.run(init)
        unfused = sess.run(y, {x: features})
    for value in got:
        np.testing.assert_array_equal(value, unfused)
    expected = features.astype(np.float64) @ w + b
    expected = np.maximum(expected, 0) if y.op.type == "Relu" else expected
    np.testing.assert_allclose(got[0][1:], expected[1:], rtol=1e-4, atol=1e-4)
    assert np.isnan(got[0][0]).any()


def test_gradient_descent_fuses_with_its_gradients_product_and_trains_bit_for_bit(two_threads, monkeypatch):
    """W3's MLP: each weight's update takes in the product that is its gradient; the losses and weights
    after some steps are those of the unfused plan, bit for bit."""
    images, labels = _matrix(128, 784), np.eye(10, dtype=np.float32)[RNG.integers(0, 10, 128)]
    first, second = _matrix(784, 256) * 0.05, _matrix(256, 10) * 0.05

    def train(steps):
        tf.reset_default_graph()
        x, y = tf.placeholder(tf.float32, [128, 784]), tf.placeholder(tf.float32, [128, 10])
        w1, b1 = tf.Variable(first, name="w1"), tf.Variable(np.zeros(256, np.float32), name="b1")
        w2, b2 = tf.Variable(second, name="w2"), tf.Variable(np.zeros(10, np.float32), name="b2")
        logits = tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2) + b2
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits))
        step = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        ops = [n.op for n in _plan_ops([loss], [x, y], [step])]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            losses = [sess.run([step, loss], {x: images, y: labels})[1] for _ in range(steps)]
            return ops, losses, sess.run([w1, b1, w2, b2])

    ops, losses, weights = train(8)
    assert ops.count("_MatMulApplyGradientDescent") == 2 and ops.count("_FusedMatMul") == 2
    assert "ApplyGradientDescent" in ops  # the biases' updates read sums, not products
    monkeypatch.setattr(pipeline, "PASSES", UNFUSED)
    unfused_ops, unfused_losses, unfused_weights = train(8)
    assert "_MatMulApplyGradientDescent" not in unfused_ops
    assert losses == unfused_losses and losses[-1] < losses[0]
    for got, expected in zip(weights, unfused_weights):
        np.testing.assert_array_equal(got, expected)


def test_parts_read_elsewhere_stay_apart():
    x = tf.placeholder(tf.float32, [None, 4])
    w = tf.Variable(_matrix(4, 3))
    product = tf.matmul(x, w)
    biased = product + tf.constant(_matrix(3))
    y = tf.nn.relu(biased)
    assert [n.op for n in _plan_ops([y, product], [x])].count("_FusedMatMul") == 0  # the product is fetched
    ops = _plan_ops([y, biased], [x])  # the biased value is fetched: product + b fuse, the Relu stays apart
    assert [n.name for n in ops if n.op == "_FusedMatMul"] == [biased.op.name] and "Relu" in [n.op for n in ops]
    twice = tf.nn.relu(product + 1.0) + product  # a second reader of the product
    assert [n.op for n in _plan_ops([twice], [x])].count("_FusedMatMul") == 0
    not_a_vector = product + tf.constant(_matrix(5, 3))  # broadcast to a matrix: not a bias
    assert [n.op for n in _plan_ops([not_a_vector], [x])].count("_FusedMatMul") == 0
    stacked = tf.placeholder(tf.float32, [2, 5, 4])
    batched = tf.matmul(stacked, tf.constant(_matrix(2, 4, 3))) + _matrix(3)
    assert [n.op for n in _plan_ops([batched], [stacked])].count("_FusedMatMul") == 0  # not two matrices

    x = tf.placeholder(tf.float32, [6, 4])  # a known batch: the gradient is the product itself
    loss = tf.reduce_sum(tf.matmul(x, w))
    gradient = tf.gradients(loss, [w])[0]
    update = tf.train.GradientDescentOptimizer(0.5).apply_gradients([(gradient, w)])
    assert "_MatMulApplyGradientDescent" in [n.op for n in _plan_ops([], [x], [update])]
    ops = [n.op for n in _plan_ops([gradient], [x], [update])]  # the gradient is fetched too
    assert "_MatMulApplyGradientDescent" not in ops and "ApplyGradientDescent" in ops
    features = _matrix(6, 4)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        before = sess.run(w)
        fetched, _ = sess.run([gradient, update], {x: features})
        np.testing.assert_allclose(fetched, features.T @ np.ones((6, 3), np.float32), rtol=1e-5)
        np.testing.assert_allclose(sess.run(w), before - 0.5 * fetched, rtol=1e-5)


def test_a_fused_forward_pass_still_batches_row_by_row():
    """Dynamic batching's analysis (compiler/rowwise.py) reads a _FusedMatMul as it read the MatMul."""
    x = tf.placeholder(tf.float32, [None, 6])
    hidden = tf.nn.relu(tf.matmul(x, tf.Variable(_matrix(6, 5))) + tf.Variable(_matrix(5)))
    probabilities = tf.nn.softmax(tf.matmul(hidden, tf.Variable(_matrix(5, 3))) + tf.Variable(_matrix(3)))
    graph = tf.get_default_graph()
    program = ir.Program(graph.nodes(), (x.name,), (probabilities.name,), ())
    plan = pipeline.compile_program(program, "digest")
    assert [s.op for s in plan.steps].count("_FusedMatMul") == 2
    assert rowwise.rowwise(plan).ok
