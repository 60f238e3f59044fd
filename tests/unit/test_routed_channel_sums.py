"""A bias added before a max-pool gets its gradient from the pool's dy (compiler/pool_indices.py,
_RoutedChannelSums): the sums of the pool's gradient over all but channels, read from a quarter of the
memory, on the compiled loop and on numpy alike, NaN windows routing nothing as in TF's MaxPoolGrad.
"""
import numpy as np
import pytest

import graphexec as tf
from graphexec.ops import pool_ops, windows
from graphexec.runtime import compiled
from graphexec.runtime.context import ExecContext

# (ksize, stride, padding, input shape): tiling windows, overlapping ones, uneven SAME padding
CASES = [(2, 2, "SAME", (4, 28, 28, 8)), (3, 2, "SAME", (3, 9, 9, 4)), (2, 2, "VALID", (2, 7, 9, 5)),
         (3, 1, "SAME", (2, 7, 7, 3))]


@pytest.fixture(params=["numpy", "numba"])
def summing(request):
    previous = compiled.choice()
    if request.param == "numba":
        pytest.importorskip("numba")
        compiled.choose("auto")
        assert pool_ops.ROUTED_SUM.wait("float32", timeout=120) is not None
    else:
        compiled.choose("numpy")
    yield request.param
    compiled.choose(previous)


def _bias_gradient(x, bias, dy, k, s, padding, relu):
    """(the bias's gradient, the plan's text) of max_pool([relu](x + bias)) with `dy`, in a session."""
    tf.reset_default_graph()
    value, b = tf.placeholder(tf.float32, x.shape), tf.placeholder(tf.float32, bias.shape)
    h = value + b
    pooled = tf.nn.max_pool(tf.nn.relu(h) if relu else h, [1, k, k, 1], [1, s, s, 1], padding)
    (grad,) = tf.gradients(pooled, [b], grad_ys=[tf.constant(dy)])
    traced = tf.RunMetadata()
    with tf.Session() as sess:
        got = sess.run(grad, {value: x, b: bias}, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                       run_metadata=traced)
    return got, traced.plan_text


def _expected(x, bias, dy, k, s, padding, relu):
    """As TF computes it: MaxPoolGrad (the maxima found again), ReluGrad, then the sum, here in float64."""
    h = x + bias
    r = np.maximum(h, np.float32(0)) if relu else h
    z = pool_ops._max_pool(ExecContext(np), r, [1, k, k, 1], [1, s, s, 1], padding)
    g = pool_ops._max_pool_grad_kernel(ExecContext(np), r, z, dy, [1, k, k, 1], [1, s, s, 1], padding)
    if relu:
        g = g * (r > 0)
    leading = tuple(range(g.ndim - bias.ndim))  # the axes the bias was broadcast over
    return g.astype(np.float64).sum(axis=leading)


@pytest.mark.parametrize("k, s, padding, shape", CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_a_bias_before_the_pool_sums_the_pools_dy(k, s, padding, shape, relu, conv_library, summing):
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-2, 3, shape).astype(np.float32)  # ties and ReLU's zeros, as in a CNN
    bias = rng.standard_normal(shape[3]).astype(np.float32)
    oh, ow, _ = windows.geometry(shape, k, k, (1, s, s, 1), padding)
    dy = rng.standard_normal((shape[0], oh, ow, shape[3])).astype(np.float32)
    got, plan = _bias_gradient(x, bias, dy, k, s, padding, relu)
    assert "= _RoutedChannelSums(" in plan and "= SumToShape(" not in plan
    assert got.shape == bias.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, _expected(x, bias, dy, k, s, padding, relu), rtol=1e-6, atol=1e-6)
    if summing == "numba":  # the loop gives numpy's bits
        compiled.choose("numpy")
        np.testing.assert_array_equal(_bias_gradient(x, bias, dy, k, s, padding, relu)[0].view(np.uint32),
                                      got.view(np.uint32))


@pytest.mark.parametrize("relu", [False, True])
def test_a_window_holding_nan_routes_nothing_to_the_bias(relu, summing):
    x = np.random.default_rng(5).standard_normal((2, 6, 6, 3)).astype(np.float32)
    x[0, 1, 1, 0] = np.nan
    bias, dy = np.zeros(3, np.float32), np.full((2, 3, 3, 3), 2.0, np.float32)
    got, plan = _bias_gradient(x, bias, dy, 2, 2, "VALID", relu)
    assert "_RoutedChannelSums" in plan
    want = _expected(x, bias, dy, 2, 2, "VALID", relu)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    if not relu:  # 17 of the 18 windows of channel 0 route their 2.0
        assert got[0] == 34.0 and got[1] == 36.0


def test_a_bias_over_more_than_channels_keeps_sum_to_shape():
    x = np.random.default_rng(6).standard_normal((2, 4, 4, 3)).astype(np.float32)
    bias = np.random.default_rng(7).standard_normal((4, 4, 3)).astype(np.float32)  # per pixel and channel
    dy = np.ones((2, 2, 2, 3), np.float32)
    got, plan = _bias_gradient(x, bias, dy, 2, 2, "VALID", relu=True)
    assert "_RoutedChannelSums" not in plan and "= SumToShape(" in plan
    np.testing.assert_allclose(got, _expected(x, bias, dy, 2, 2, "VALID", relu=True).astype(np.float32))
