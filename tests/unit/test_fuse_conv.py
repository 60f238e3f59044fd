"""compiler/fuse_conv.py: a convolution, its bias and its ReLU become one _FusedConv2D step that gives the
same bits as the three steps, with either convolution library; anything else reading the parts keeps
them apart."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
import small_cnn
from graphexec import ir
from graphexec.compiler import pipeline
from graphexec.compiler.fuse_conv import fuse_conv_epilogues

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 9, 8, 2)).astype(np.float32)
W = RNG.normal(size=(3, 3, 2, 5)).astype(np.float32)
B = RNG.normal(size=(5,)).astype(np.float32)


def _plan_ops(fetches, feeds):
    graph = tf.get_default_graph()
    program = ir.Program(graph.nodes(), tuple(t.name for t in feeds), tuple(t.name for t in fetches), ())
    return pipeline.optimize(program, check=True).nodes


def _run_both_ways(fetches, feeds, monkeypatch):
    """The fetches' values with the pass, and without it."""
    init = tf.global_variables_initializer()
    with tf.Session() as sess:
        sess.run(init)
        fused = sess.run(fetches, feeds)
    monkeypatch.setattr(pipeline, "PASSES", tuple(p for p in pipeline.PASSES if p is not fuse_conv_epilogues))
    with tf.Session() as sess:
        sess.run(init)
        unfused = sess.run(fetches, feeds)
    return fused, unfused


BUILDERS = {
    "relu(conv + b)": lambda conv, b: tf.nn.relu(conv + b),
    "relu(bias_add)": lambda conv, b: tf.nn.relu(tf.nn.bias_add(conv, b)),
    "b + conv": lambda conv, b: b + conv,
    "relu(b + conv)": lambda conv, b: tf.nn.relu(b + conv),
}


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
@pytest.mark.parametrize("strides, padding", [((1, 1), "SAME"), ((2, 2), "SAME"), ((1, 2), "VALID")])
def test_fused_step_gives_the_same_bits(build, strides, padding, conv_library, monkeypatch):
    x = tf.placeholder(tf.float32, [None, 9, 8, 2])
    conv = tf.nn.conv2d(x, tf.constant(W), [1, *strides, 1], padding)
    y = build(conv, tf.Variable(B))
    fused_nodes = [n for n in _plan_ops([y], [x]) if n.op == "_FusedConv2D"]
    assert len(fused_nodes) == 1 and fused_nodes[0].name == y.op.name
    assert fused_nodes[0].attrs["activation"] == ("Relu" if y.op.type == "Relu" else "")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        metadata = tf.RunMetadata()
        sess.run(y, {x: X}, run_metadata=metadata)
        assert {conv.op.name, y.op.name} <= set(metadata.executed_nodes)  # traces name the fused nodes
    fused, unfused = _run_both_ways(y, {x: X}, monkeypatch)
    np.testing.assert_array_equal(fused, unfused)
    with tf.Session() as sess:
        expected = sess.run(conv, {x: X}) + B
    np.testing.assert_allclose(fused, np.maximum(expected, 0) if y.op.type == "Relu" else expected, rtol=1e-5, atol=1e-5)


def test_parts_read_elsewhere_stay_apart(conv_library):
    x = tf.placeholder(tf.float32, [None, 9, 8, 2])
    conv = tf.nn.conv2d(x, tf.constant(W), [1, 1, 1, 1], "SAME")
    biased = conv + B
    y = tf.nn.relu(biased)
    assert [n.op for n in _plan_ops([y, conv], [x])].count("_FusedConv2D") == 0  # the convolution is fetched
    ops = _plan_ops([y, biased], [x])  # the biased value is fetched: conv + b fuse, the Relu stays apart
    assert [n.name for n in ops if n.op == "_FusedConv2D"] == [biased.op.name] and "Relu" in [n.op for n in ops]
    twice = tf.nn.relu(conv + B) + conv  # a second reader of the convolution
    assert [n.op for n in _plan_ops([twice], [x])].count("_FusedConv2D") == 0
    not_a_vector = tf.nn.relu(conv + tf.constant(np.ones((9, 8, 5), np.float32)))
    assert [n.op for n in _plan_ops([not_a_vector], [x])].count("_FusedConv2D") == 0
    with tf.Session() as sess:
        got = sess.run([y, biased, twice], {x: X})
        plain = sess.run(conv, {x: X})
    np.testing.assert_allclose(got[1], plain + B, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[2], np.maximum(plain + B, 0) + plain, rtol=1e-5, atol=1e-5)


def test_a_cnn_trains_identically_with_and_without_the_fusion(conv_library, monkeypatch):
    images = RNG.normal(size=(6, 10, 10, 1)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[RNG.integers(0, 3, 6)]
    fused = small_cnn.train_losses(images, labels, 4, seed=3)
    monkeypatch.setattr(pipeline, "PASSES", tuple(p for p in pipeline.PASSES if p is not fuse_conv_epilogues))
    np.testing.assert_array_equal(fused, small_cnn.train_losses(images, labels, 4, seed=3))
    assert fused[-1] < fused[0]
