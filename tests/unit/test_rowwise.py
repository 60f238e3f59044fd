"""compiler.rowwise: which plans dynamic batching may stack along dimension 0. Every plan judged
row-wise is also run here on three requests stacked and on each alone: each request's rows must come
out the same (allclose: BLAS may take another code path for another number of rows)."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from graphexec.compiler.rowwise import rowwise
from graphexec.session import InProcessRunner

RNG = np.random.default_rng(0)
ROWS = (1, 3, 2)  # rows of the three requests


def plan_of(graph, feeds, fetches):
    runner = InProcessRunner()
    prepared, _, _ = runner.prepare(graph, [f.name for f in feeds], [f.name for f in fetches], [])
    return runner, prepared


def check(graph, feeds, fetches, shapes, dtype=np.float32):
    """The verdict; when row-wise, also that stacked runs split back into each request's own answer."""
    runner, prepared = plan_of(graph, feeds, fetches)
    verdict = rowwise(prepared.cached.plan)
    if not verdict.ok:
        return verdict
    requests = [[RNG.normal(size=(n, *shape)).astype(dtype) for shape in shapes] for n in ROWS]
    alone = [runner.run(prepared, request).fetches for request in requests]
    stacked = runner.run(prepared, [np.concatenate(column) for column in zip(*requests)]).fetches
    start = 0
    for n, answer in zip(ROWS, alone):
        for split, value, by_rows in zip(stacked, answer, verdict.fetch_rows):
            mine = split[start:start + n] if by_rows else split
            assert mine.shape == np.shape(value)
            np.testing.assert_allclose(mine, value, rtol=1e-6, atol=1e-6)
        start += n
    return verdict


def graph_with(build):
    graph = tf.Graph()
    with graph.as_default():
        return graph, build()


def mlp():
    x = tf.placeholder(tf.float32, [None, 6], name="x")
    w1, b1 = tf.constant(RNG.normal(size=(6, 5)).astype(np.float32)), tf.constant(np.ones(5, np.float32))
    w2 = tf.constant(RNG.normal(size=(5, 3)).astype(np.float32))
    logits = tf.matmul(tf.nn.relu(tf.nn.bias_add(tf.matmul(x, w1), b1)), w2)
    return x, logits


ROW_WISE = {
    "mlp softmax": lambda x, logits: [tf.nn.softmax(logits)],
    "log softmax, argmax, top-k": lambda x, logits: [tf.nn.log_softmax(logits), tf.argmax(logits, 1),
                                                     *tf.nn.top_k(logits, 2)],
    "reductions over axis 1": lambda x, logits: [tf.reduce_sum(logits, 1), tf.reduce_max(x, -1, keepdims=True)],
    "reshape keeping rows": lambda x, logits: [tf.reshape(x, [-1, 2, 3]), tf.reshape(logits, [-1, 3, 1])],
    "expand, squeeze, transpose": lambda x, logits: [tf.squeeze(tf.expand_dims(logits, 1), [1]),
                                                     tf.transpose(tf.reshape(x, [-1, 2, 3]), [0, 2, 1])],
    "concat along 1, shared fetch": lambda x, logits: [tf.concat([x, logits], 1), tf.constant([1.0, 2.0])],
    "elementwise broadcast": lambda x, logits: [tf.maximum(x * 2.0 - 1.0, tf.zeros([1, 6])), tf.sigmoid(x) + x],
}
NOT_ROW_WISE = {
    "sum over the batch": (lambda x, logits: [tf.reduce_sum(logits, 0)], "Sum"),
    "sum over everything": (lambda x, logits: [tf.reduce_sum(logits)], "Sum"),
    "reshape across rows": (lambda x, logits: [tf.reshape(x, [-1, 4])], "Reshape"),
    "shape of the batch": (lambda x, logits: [tf.shape(x)], "Shape"),
    "random": (lambda x, logits: [x + tf.random_uniform([6])], "RandomUniform"),
    "matmul with rows on the right": (lambda x, logits: [tf.matmul(tf.ones([2, 3]), logits, transpose_b=True)],
                                      "MatMul"),
    "softmax over the batch": (lambda x, logits: [tf.nn.softmax(logits, axis=0)], "Softmax"),
    "transpose moving rows": (lambda x, logits: [tf.transpose(x)], "Transpose"),
    "argmax over the batch": (lambda x, logits: [tf.argmax(logits, 0)], "ArgMax"),
    "printing": (lambda x, logits: [tf.Print(logits, [logits])], "Print"),
}


@pytest.mark.parametrize("name", ROW_WISE)
def test_row_wise_plans_are_batched_and_split_back_exactly(name):
    graph, (x, logits) = graph_with(mlp)
    with graph.as_default():
        fetches = ROW_WISE[name](x, logits)
    verdict = check(graph, [x], fetches, [(6,)])
    assert verdict.ok, verdict.reason


@pytest.mark.parametrize("name", NOT_ROW_WISE)
def test_plans_that_may_mix_rows_are_refused_naming_the_op(name):
    graph, (x, logits) = graph_with(mlp)
    build, op = NOT_ROW_WISE[name]
    with graph.as_default():
        fetches = build(x, logits)
    verdict = check(graph, [x], fetches, [(6,)])
    assert not verdict.ok and f"({op})" in verdict.reason, verdict.reason


def test_variables_read_only_are_shared_and_writes_are_refused():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 2])
        w = tf.Variable(tf.ones([2, 2]))
        y = tf.matmul(x, w)
        update = tf.assign_add(w, tf.ones([2, 2]))
    assert rowwise(plan_of(graph, [x], [y])[1].cached.plan).ok
    refused = rowwise(plan_of(graph, [x], [y, update])[1].cached.plan)
    assert not refused.ok and "AssignAdd" in refused.reason


def test_feeds_need_a_free_dimension_0_and_all_feeds_count():
    graph = tf.Graph()
    with graph.as_default():
        fixed = tf.placeholder(tf.float32, [4, 2], name="fixed")
        scalar = tf.placeholder(tf.float32, [], name="scalar")
        free = tf.placeholder(tf.float32, [None, 2], name="free")
        doubled, scaled = fixed * 2.0, free * scalar
    for feeds, fetch in (([fixed], doubled), ([free, scalar], scaled)):
        verdict = rowwise(plan_of(graph, feeds, [fetch])[1].cached.plan)
        assert not verdict.ok and "dimension 0 must be free" in verdict.reason


def test_two_row_feeds_combine_row_by_row():
    graph = tf.Graph()
    with graph.as_default():
        a = tf.placeholder(tf.float32, [None, 3])
        b = tf.placeholder(tf.float32, [None, 3])
        y = tf.reduce_mean(a * b + a, axis=1)
    assert check(graph, [a, b], [y], [(3,), (3,)]).ok


def test_conv_and_pool_over_rows_and_embedding_lookup():
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, [None, 6, 6, 1])
        net = tf.nn.max_pool(tf.nn.conv2d(images, tf.ones([3, 3, 1, 2]), [1, 1, 1, 1], "SAME"), [1, 2, 2, 1],
                             [1, 2, 2, 1], "VALID")
    assert check(graph, [images], [net], [(6, 6, 1)]).ok
    graph = tf.Graph()
    with graph.as_default():  # conv + bias + ReLU: one _FusedConv2D step (compiler/fuse_conv.py)
        images = tf.placeholder(tf.float32, [None, 6, 6, 1])
        net = tf.nn.relu(tf.nn.conv2d(images, tf.ones([3, 3, 1, 2]), [1, 1, 1, 1], "SAME") + tf.constant([0.5, -1.0]))
    assert "_FusedConv2D" in [step.op for step in plan_of(graph, [images], [net])[1].cached.plan.steps]
    assert check(graph, [images], [net], [(6, 6, 1)]).ok
    graph = tf.Graph()
    with graph.as_default():
        ids = tf.placeholder(tf.int32, [None, 2])
        table = tf.constant(RNG.normal(size=(5, 3)).astype(np.float32))
        embedded = tf.reduce_sum(tf.gather(table, ids), 1)
    runner, prepared = plan_of(graph, [ids], [embedded])
    verdict = rowwise(prepared.cached.plan)
    assert verdict.ok, verdict.reason
    requests = [RNG.integers(0, 5, size=(n, 2)).astype(np.int32) for n in ROWS]
    stacked = runner.run(prepared, [np.concatenate(requests)]).fetches[0]
    assert np.array_equal(stacked, np.concatenate([runner.run(prepared, [r]).fetches[0] for r in requests]))
