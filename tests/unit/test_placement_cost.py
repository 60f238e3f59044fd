"""The placer's cost model (graphexec.runtime.cost): when a GPU worker is live, a run that asks for no
device goes to the GPU only when its arithmetic outweighs the GPU's per-step launches and bus copies."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from graphexec import ir
from graphexec.compiler.pipeline import compile_program
from graphexec.runtime import cost, placement
from graphexec.runtime.worker import CachedPlan

BOTH = frozenset({placement.CPU, placement.GPU})


def _plan(graph, feeds, fetches, targets=()):
    program = ir.Program(graph.nodes(), tuple(t.name for t in feeds), tuple(t.name for t in fetches),
                         tuple(t.name for t in targets), graph.seed)
    return compile_program(program, graph.digest())


def _mlp(width: int, depth: int, device: str = ""):
    graph = tf.Graph()
    with graph.as_default(), tf.device(device):
        x = tf.placeholder(tf.float32, [None, width])
        y = tf.placeholder(tf.int64, [None])
        hidden = x
        for _ in range(depth):
            hidden = tf.nn.relu(tf.matmul(hidden, tf.Variable(tf.zeros([width, width]))))
        logits = tf.matmul(hidden, tf.Variable(tf.zeros([width, 10])))
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    return CachedPlan.of("mlp", _plan(graph, [x, y], [loss], [train]))


def _feeds(rows: int, width: int):
    return [np.zeros((rows, width), np.float32), np.zeros(rows, np.int64)]


def test_flops_of_products_and_convolutions_per_row():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 784])
        product = tf.matmul(x, tf.zeros([784, 256]) + 1.0)
        outer = tf.matmul(x, x, transpose_a=True)  # [784, 784], summed over the rows
        images = tf.placeholder(tf.float32, [None, 28, 28, 1])
        conv = tf.nn.conv2d(images, tf.zeros([5, 5, 1, 32]) + 1.0, [1, 1, 1, 1], "SAME")
    products = cost.estimate(_plan(graph, [x], [product])).flops
    assert products.per_row == pytest.approx(2 * 784 * 256, rel=1e-3)  # (tf.zeros(...) + 1.0 is folded)
    assert cost.estimate(_plan(graph, [x], [outer])).flops.per_row == pytest.approx(2 * 784 * 784, rel=1e-3)
    assert cost.estimate(_plan(graph, [images], [conv])).flops.per_row == pytest.approx(2 * 28 * 28 * 32 * 25,
                                                                                          rel=1e-3)
    assert cost.rows_of(_plan(graph, [x], [product]), [np.zeros((37, 784), np.float32)]) == 37


def test_a_convolutions_two_gradients_cost_what_it_costs_each():
    """Conv2DBackpropInput and Conv2DBackpropFilter take a 1-D sizes input beside their two arrays: each
    is as many multiply-adds as the forward convolution, not its output's element count."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, [None, 28, 28, 1])
        weights = tf.Variable(tf.ones([5, 5, 1, 32]))
        conv = tf.nn.conv2d(images, weights, [1, 1, 1, 1], "SAME")
        grads = tf.gradients(tf.reduce_sum(conv * conv), [images, weights])
    plan = _plan(graph, [images], grads)
    assert {"Conv2DBackpropInput", "Conv2DBackpropFilter"} <= {step.op for step in plan.steps}
    forward = 2 * 28 * 28 * 32 * 25
    assert cost.estimate(plan).flops.per_row == pytest.approx(3 * forward, rel=0.05)  # forward + both gradients


def test_a_small_batch_stays_on_the_cpu_and_a_large_one_goes_to_the_gpu():
    cached = _mlp(784, 1)  # W3's size: ~0.8 MFLOP per row over ~20 steps
    small = cached.placement(BOTH, True, _feeds(16, 784))
    large = cached.placement(BOTH, True, _feeds(8192, 784))
    assert small.device_type == placement.CPU and set(small.step_devices) == {"/cpu:0"} and not small.soft
    assert large.device_type == placement.GPU and "/device:GPU:0" in large.step_devices
    work = cost.estimate(cached.plan)
    assert work.cpu_seconds(16) < work.gpu_seconds(16) and work.gpu_seconds(8192) < work.cpu_seconds(8192)
    assert cached.placement(BOTH, True).device_type == placement.GPU  # no feeds (in-process): as TensorFlow


def test_wide_layers_go_to_the_gpu_at_a_training_batch():
    cached = _mlp(4096, 3)
    assert cached.placement(BOTH, True, _feeds(1024, 4096)).device_type == placement.GPU
    assert cached.placement(BOTH, True, _feeds(1, 4096)).device_type == placement.CPU


def test_a_graph_pinned_to_the_gpu_stays_there_however_small():
    cached = _mlp(8, 1, "/gpu:0")
    placed = cached.placement(BOTH, True, _feeds(1, 8))
    assert placed.device_type == placement.GPU and placed.on_cpu is None


def test_bandwidth_bound_work_stays_on_the_cpu():
    graph = tf.Graph()
    with graph.as_default():
        big = tf.placeholder(tf.float32, [16 * 1024 * 1024])
        doubled = big * 2.0
    cached = CachedPlan.of("double", _plan(graph, [big], [doubled]))
    assert cached.placement(BOTH, True, [np.zeros(16 * 1024 * 1024, np.float32)]).device_type == placement.CPU


def test_without_a_gpu_nothing_changes():
    cached = _mlp(4096, 3)
    placed = cached.placement(frozenset({placement.CPU}), True, _feeds(1024, 4096))
    assert placed.device_type == placement.CPU and placed.on_cpu is None
