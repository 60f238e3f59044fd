"""The training kernels (nn ops, gradient helpers, optimizer updates) on CuPy agree with numpy, and a
few Adam steps of a small CNN run on the GPU backend give the CPU's variables.
"""
from __future__ import annotations

import numpy as np
import pytest

from gpu_required import cupy  # noqa: E402 - skips this module without CuPy or a GPU

pytestmark = pytest.mark.timeout(300)

import graphexec as tf  # noqa: E402
from graphexec.ir import ShapeAttr  # noqa: E402
from graphexec.ops import registry  # noqa: E402
from graphexec.runtime import placement  # noqa: E402
from graphexec.runtime.context import ExecContext  # noqa: E402
from graphexec.session import InProcessRunner  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 6, 5, 3)).astype(np.float32)
W = RNG.standard_normal((3, 3, 3, 4)).astype(np.float32)
LOGITS = RNG.standard_normal((4, 5)).astype(np.float32) * 4
WINDOW = {"ksize": (1, 2, 2, 1), "strides": (1, 2, 2, 1), "padding": "SAME", "data_format": "NHWC"}
CONV = {"strides": (1, 2, 1, 1), "padding": "SAME", "data_format": "NHWC"}
SLICE = {"begin": (0, 1), "end": (0, 4), "strides": (1, 2), "begin_mask": 1, "end_mask": 1, "ellipsis_mask": 0,
         "new_axis_mask": 0, "shrink_axis_mask": 0}

KERNEL_CASES = {
    "Relu": ([LOGITS], {}),
    "ReluGrad": ([LOGITS, LOGITS - 1], {}),
    "Softmax": ([LOGITS], {"axis": -1}),
    "LogSoftmax": ([LOGITS], {"axis": 0}),
    "SoftmaxCrossEntropyWithLogits": ([LOGITS, np.abs(LOGITS) / np.abs(LOGITS).sum(1, keepdims=True)], {}),
    "SparseSoftmaxCrossEntropyWithLogits": ([LOGITS, np.array([0, 4, 2, 1])], {}),
    "Conv2D": ([X, W], CONV),
    "Conv2DBackpropInput": ([np.array(X.shape, np.int32), W, np.ones((2, 3, 5, 4), np.float32)], CONV),
    "Conv2DBackpropFilter": ([X, np.array(W.shape, np.int32), np.ones((2, 3, 5, 4), np.float32)], CONV),
    "MaxPool": ([X], WINDOW),
    "AvgPool": ([X], WINDOW),
    "AvgPoolGrad": ([np.array(X.shape, np.int32), np.ones((2, 3, 3, 3), np.float32)], WINDOW),
    "SumToShape": ([LOGITS, np.array([1, 5], np.int32)], {"static_shape": ShapeAttr([1, 5])}),
    "StridedSliceGrad": ([np.array([4, 5], np.int32), np.ones((4, 2), np.float32)], SLICE),
    "ProdOfOthers": ([np.array([[1.5, 0.0, 2.0], [3.0, 2.0, -1.0]])], {"axis": (1,)}),
    "UnsortedSegmentSum": ([LOGITS, np.array([0, 2, 0, 1]), np.array(3, np.int32)], {}),
    "MirrorPadGrad": ([LOGITS, np.array([[1, 1], [1, 1]], np.int32)], {"mode": "REFLECT"}),
}


def _host(value):
    return [cupy.asnumpy(v) for v in value] if isinstance(value, (list, tuple)) else [cupy.asnumpy(value)]


@pytest.mark.parametrize("name", sorted(KERNEL_CASES))
def test_kernel_on_cupy_matches_numpy(name):
    inputs, attrs = KERNEL_CASES[name]
    kernel = registry.get(name).kernel
    expected = kernel(ExecContext(np), *inputs, **attrs)
    got = kernel(ExecContext(cupy), *[cupy.asarray(x) for x in inputs], **attrs)
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    for g, e in zip(_host(got), expected):
        assert g.dtype == np.asarray(e).dtype
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_max_pool_grad_on_cupy_matches_numpy():
    kernel = registry.get("MaxPool").kernel
    z = kernel(ExecContext(np), X, **WINDOW)
    dy = np.ones_like(z)
    expected = registry.get("MaxPoolGrad").kernel(ExecContext(np), X, z, dy, **WINDOW)
    got = registry.get("MaxPoolGrad").kernel(ExecContext(cupy), *map(cupy.asarray, (X, z, dy)), **WINDOW)
    np.testing.assert_array_equal(cupy.asnumpy(got), expected)


@pytest.mark.parametrize("name, inputs, slots, attrs", [
    ("ApplyGradientDescent", [0.1], (), {}),
    ("ApplyMomentum", [0.1, "g", 0.9], ("accum",), {"use_nesterov": True}),
    ("ApplyAdam", [0.9, 0.99, 0.01, 0.9, 0.999, 1e-8], ("m", "v"), {}),
    ("ApplyRMSProp", [0.01, 0.9, 0.5, 1e-10], ("ms", "mom", "mg"), {"centered": True}),
    ("ApplyAdagrad", [0.1], ("accum",), {}),
])
def test_optimizer_updates_on_cupy_match_numpy(name, inputs, slots, attrs):
    grad = LOGITS
    args = [grad if x == "g" else np.float32(x) for x in inputs]
    if "g" not in inputs:
        args.append(grad)
    initial = {"var": LOGITS * 0.5, **{s: np.abs(LOGITS) * (s != "mg") + 1 for s in slots}}
    results = []
    for xp in (np, cupy):
        variables = {k: xp.asarray(v) for k, v in initial.items()}
        ctx = ExecContext(xp, variables)
        registry.get(name).kernel(ctx, *[xp.asarray(a) for a in args], var="var", slots=slots, dtype=tf.float32,
                                  shape=ShapeAttr([4, 5]), **attrs)
        results.append({k: cupy.asnumpy(v) if xp is cupy else v for k, v in variables.items()})
    for key in initial:
        np.testing.assert_allclose(results[1][key], results[0][key], rtol=1e-5, err_msg=key)


def test_cnn_training_steps_on_the_gpu_backend_match_the_cpu():
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(3)
        images = tf.placeholder(tf.float32, [None, 8, 8, 1], name="images")
        labels = tf.placeholder(tf.int64, [None], name="labels")
        w = tf.Variable(tf.truncated_normal([3, 3, 1, 8], stddev=0.3))
        hidden = tf.nn.max_pool(tf.nn.relu(tf.nn.conv2d(images, w, strides=1, padding="SAME")), 2, 2, "SAME")
        dense = tf.Variable(tf.truncated_normal([4 * 4 * 8, 10], stddev=0.1))
        logits = tf.matmul(tf.reshape(hidden, [-1, 4 * 4 * 8]), dense)
        loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
        train = tf.train.AdamOptimizer(0.01).minimize(loss)
        init = tf.global_variables_initializer()
    feeds = [RNG.random((16, 8, 8, 1)).astype(np.float32), RNG.integers(0, 10, 16)]
    finals = []
    for device_type in (placement.CPU, placement.GPU):  # the in-process runner: WorkerCore on numpy, on CuPy
        runner = InProcessRunner(device_type)
        for fetches, targets in (([], [init.name]), ([], [train.name]), ([], [train.name]), ([loss.name], [])):
            names = [images.name, labels.name] if targets != [init.name] else []
            prepared, _, _ = runner.prepare(graph, names, fetches, targets)
            result = runner.run(prepared, feeds if names else []).fetches
        finals.append((float(result[0]), runner.variables()))  # fetches and variables come back as host arrays
    (cpu_loss, cpu_vars), (gpu_loss, gpu_vars) = finals
    assert gpu_loss == pytest.approx(cpu_loss, rel=1e-4)
    for name in cpu_vars:
        np.testing.assert_allclose(gpu_vars[name], cpu_vars[name], rtol=1e-3, atol=1e-5, err_msg=name)


if __name__ == "__main__":  # for machines without pytest: run every case, fail loudly
    for case in sorted(KERNEL_CASES):
        test_kernel_on_cupy_matches_numpy(case)
    test_max_pool_grad_on_cupy_matches_numpy()
    test_cnn_training_steps_on_the_gpu_backend_match_the_cpu()
    print("all GPU checks passed")
