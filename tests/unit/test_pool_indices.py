"""A max-pool keeps where each maximum came from for its gradient (compiler/pool_indices.py): the
rewrite is made only where it applies, and its gradient has the same bits as MaxPoolGrad's, which
finds every maximum again, on every path (oneDNN's indices, graphexec's kernels, NaN, uneven padding,
one thread or several).
"""
import numpy as np
import pytest

import graphexec as tf
from graphexec.ops import pool_ops, windows
from graphexec.runtime import compiled, intra_op
from graphexec.runtime import conv_library as library
from graphexec.runtime.context import ExecContext

# (ksize, stride, padding, input shape): tiling windows, overlapping ones, stride 1, SAME padding that
# is the same on both sides and SAME padding with an extra row and column after (torch cannot say it).
# Windows apart (stride over ksize) and tiling ones with padding before them too.
CASES = [(2, 2, "SAME", (4, 28, 28, 8)), (3, 2, "SAME", (3, 9, 9, 4)), (3, 1, "SAME", (2, 7, 7, 3)),
         (2, 2, "VALID", (2, 7, 9, 5)), (3, 2, "SAME", (3, 8, 8, 4)), (3, 3, "VALID", (2, 9, 9, 2)),
         (2, 3, "VALID", (2, 8, 10, 3)), (3, 3, "SAME", (2, 7, 7, 3)),
         (17, 17, "VALID", (2, 35, 36, 2))]  # windows of 289 inputs, apart, leaving a row and columns out


@pytest.fixture
def two_threads(monkeypatch):
    previous = intra_op.threads()
    intra_op.set_threads(2)
    monkeypatch.setattr(intra_op, "MIN_ELEMENTS", 1)  # test-sized pools split over both threads
    yield
    intra_op.set_threads(previous)


@pytest.fixture(params=["numpy", "numba", "numba, plane indices"])
def routing(request, monkeypatch):
    """The gradient from indices on torch's kernel, or, where windows do not overlap, on the compiled
    loop (ops/pool_ops._routed_loop), reading int8 offsets within the window or (as where their loops
    are not compiled) torch's positions in the plane: yields "numpy" or "numba", and the list of the
    loop's calls."""
    previous = compiled.choice()
    calls, loops = [], {}
    if request.param != "numpy":
        pytest.importorskip("numba")
        compiled.choose("auto")
        for key in ("float32", pool_ops.OFFSETS):
            loops[key] = loop = pool_ops.ROUTED.wait(key, timeout=120)
            assert loop is not None and pool_ops.POOLED.wait(key, timeout=120) is not None
            pool_ops.ROUTED.compiled[key] = lambda *args, loop=loop: calls.append(args[0].shape) or loop(*args)
        if request.param == "numba, plane indices":
            monkeypatch.setattr(pool_ops, "_window_offsets", lambda ksize, strides: False)
    else:
        compiled.choose("numpy")
    yield request.param.split(",")[0], calls
    pool_ops.ROUTED.compiled.update(loops)
    compiled.choose(previous)


def _values(shape, ties, dtype=np.float32):
    rng = np.random.default_rng(sum(shape))
    # few distinct values: many windows hold their maximum twice or more (ReLU's zeros, as in a CNN)
    x = rng.integers(-2, 3, shape).astype(dtype) if ties else rng.standard_normal(shape).astype(dtype)
    return x


def _pool_gradient(x, dy, k, s, padding):
    """(pooled, gradient, the plan's text) of a max-pool and its gradient with `dy`, in a session."""
    tf.reset_default_graph()
    value = tf.placeholder(tf.as_dtype(x.dtype), x.shape)
    pooled = tf.nn.max_pool(value, [1, k, k, 1], [1, s, s, 1], padding)
    (grad,) = tf.gradients(pooled, [value], grad_ys=[tf.constant(dy)])
    traced = tf.RunMetadata()
    with tf.Session() as sess:
        z, g = sess.run([pooled, grad], {value: x}, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                        run_metadata=traced)
    return z, g, traced.plan_text


def _max_pool_grad(x, z, dy, k, s, padding):
    """TF's MaxPoolGrad as graphexec ran it before the rewrite: the maxima found again from x and z."""
    return pool_ops._max_pool_grad_kernel(ExecContext(np), x, z, dy, [1, k, k, 1], [1, s, s, 1], padding)


@pytest.mark.parametrize("k, s, padding, shape", CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_the_gradient_from_indices_has_maxpoolgrads_bits(k, s, padding, shape, ties, conv_library, two_threads,
                                                         routing):
    x = _values(shape, ties)
    oh, ow, _ = windows.geometry(shape, k, k, (1, s, s, 1), padding)
    dy = np.random.default_rng(1).standard_normal((shape[0], oh, ow, shape[3])).astype(np.float32)
    dy[0, 0] = -0.0
    z, grad, plan = _pool_gradient(x, dy, k, s, padding)
    choice, calls = routing
    if choice == "numba":  # the compiled pass gives torch's bits, -0.0 in dy included
        compiled.choose("numpy")
        np.testing.assert_array_equal(_pool_gradient(x, dy, k, s, padding)[1].view(np.uint32), grad.view(np.uint32))
    assert "_MaxPoolWithIndices" in plan and "_MaxPoolGradAtIndices" in plan and " MaxPoolGrad(" not in plan
    np.testing.assert_array_equal(z, pool_ops._max_pool(ExecContext(np), x, [1, k, k, 1], [1, s, s, 1], padding))
    np.testing.assert_array_equal(grad, _max_pool_grad(x, z, dy, k, s, padding))
    # every window's gradient reaches exactly one input of it (windows may share inputs: sums compared)
    np.testing.assert_allclose(grad.sum(axis=(1, 2)), dy.sum(axis=(1, 2)), rtol=1e-4, atol=1e-4)
    pads = windows.geometry(shape, k, k, (1, s, s, 1), padding)[2]
    with_indices = conv_library == "torch" and library._pool_args([1, k, k, 1], [1, s, s, 1], pads) is not None
    routed = choice == "numba" and s >= k and with_indices  # windows apart, and torch's indices to read
    assert sum(images[0] for images in calls) == (shape[0] if routed else 0)


@pytest.mark.parametrize("k, s, padding, shape", CASES)
def test_a_relu_before_the_pool_masks_in_the_gradients_pass(k, s, padding, shape, conv_library, two_threads,
                                                             routing):
    x = _values(shape, ties=True)  # ReLU's zeros: windows whose maximum is 0, which the mask clears
    oh, ow, _ = windows.geometry(shape, k, k, (1, s, s, 1), padding)
    dy = np.random.default_rng(3).integers(-3, 4, (shape[0], oh, ow, shape[3])).astype(np.float32)
    tf.reset_default_graph()
    value = tf.placeholder(tf.float32, x.shape)
    pooled = tf.nn.max_pool(tf.nn.relu(value), [1, k, k, 1], [1, s, s, 1], padding)
    (grad,) = tf.gradients(pooled, [value], grad_ys=[tf.constant(dy)])
    traced = tf.RunMetadata()
    with tf.Session() as sess:
        got = sess.run(grad, {value: x}, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                       run_metadata=traced)
        choice, calls = routing
        if choice == "numba":  # the compiled pass gives torch's bits: nothing changes once it is compiled
            compiled.choose("numpy")
            np.testing.assert_array_equal(sess.run(grad, {value: x}).view(np.uint32), got.view(np.uint32))
    assert "= _MaxPoolGradAtIndices(" in traced.plan_text and "= ReluGrad(" not in traced.plan_text
    r = np.maximum(x, np.float32(0))
    z = pool_ops._max_pool(ExecContext(np), r, [1, k, k, 1], [1, s, s, 1], padding)
    # as TF runs it: MaxPoolGrad, then ReluGrad (values: a masked negative dy is -0.0 in TF's order, +0.0 here)
    np.testing.assert_array_equal(got, _max_pool_grad(r, z, dy, k, s, padding) * (r > 0))
    pads = windows.geometry(shape, k, k, (1, s, s, 1), padding)[2]
    with_indices = conv_library == "torch" and library._pool_args([1, k, k, 1], [1, s, s, 1], pads) is not None
    assert sum(images[0] for images in calls) == (shape[0] if choice == "numba" and s >= k and with_indices else 0)


@pytest.mark.parametrize("where", ["input", "gradient"])
@pytest.mark.parametrize("relu", [False, True])
def test_nan_takes_maxpoolgrads_own_rules(where, relu, conv_library, two_threads, routing):
    """A NaN in a window: torch's index points at it, TF's MaxPoolGrad routes nothing there; the rewrite
    gives TF's answer (the compiled pass finds the NaN as it reads the pooled values, and the gradient
    starts over). A NaN in dy reaches its window's maximum only."""
    x, dy = _values((2, 6, 6, 3), ties=False), np.ones((2, 3, 3, 3), np.float32)
    if where == "input":
        x[0, 1, 1, 0] = np.nan
    else:
        dy[1, 2, 0, 2] = np.nan
    tf.reset_default_graph()
    value = tf.placeholder(tf.float32, x.shape)
    pooled = tf.nn.max_pool(tf.nn.relu(value) if relu else value, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
    (grad,) = tf.gradients(pooled, [value], grad_ys=[tf.constant(dy)])
    with tf.Session() as sess:
        z, got = sess.run([pooled, grad], {value: x})
    r = np.maximum(x, np.float32(0)) if relu else x  # numpy's maximum keeps NaN, as TF's Relu
    want = _max_pool_grad(r, z, dy, 2, 2, "VALID")
    np.testing.assert_array_equal(got, want * (r > 0) if relu else want)  # NaN in the same places
    assert np.isnan(got).sum() == (where == "gradient")
    choice, calls = routing
    assert bool(calls) == (choice == "numba" and conv_library == "torch")  # the loop ran, NaN or not


def test_float64_pools_run_graphexecs_kernels_with_the_same_answer(two_threads):
    x = _values((3, 8, 8, 2), ties=True, dtype=np.float64)
    dy = np.random.default_rng(2).standard_normal((3, 4, 4, 2))
    z, grad, plan = _pool_gradient(x, dy, 2, 2, "SAME")
    assert "_MaxPoolGradAtIndices" in plan and grad.dtype == np.float64
    np.testing.assert_array_equal(grad, _max_pool_grad(x, z, dy, 2, 2, "SAME"))


def test_a_pool_is_left_alone_where_its_gradient_is_not_in_the_run():
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [2, 4, 4, 1])
    pooled = tf.nn.max_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
    (grad,) = tf.gradients(tf.reduce_sum(pooled), [x])
    value = np.arange(32, dtype=np.float32).reshape(2, 4, 4, 1)
    with tf.Session() as sess:
        for fetches, rewritten in ((pooled, False), ([pooled, grad], True)):
            traced = tf.RunMetadata()
            sess.run(fetches, {x: value}, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                     run_metadata=traced)
            assert ("_MaxPoolWithIndices" in traced.plan_text) == rewritten
            assert (" MaxPool(" in traced.plan_text) != rewritten


def test_offsets_the_compiled_pass_cannot_take_give_maxpoolgrads_answer(conv_library, two_threads, routing):
    """Window offsets (int8) name inputs only within their window: where the compiled pass does not run (a
    dy that is not contiguous), torch's gradient cannot read them, and MaxPoolGrad's kernel answers."""
    choice, calls = routing
    if choice != "numba" or conv_library != "torch":
        pytest.skip("offsets come from the compiled pool")
    x = _values((3, 8, 8, 4), ties=True)
    ksize = strides = [1, 2, 2, 1]
    z, indices = pool_ops._max_pool_with_indices(ExecContext(np), x, ksize, strides, "SAME")
    if pool_ops._window_offsets(ksize, strides):
        assert indices.dtype == np.int8 and indices.min() >= 0 and indices.max() <= 3
    wide = np.random.default_rng(4).standard_normal((3, 4, 4, 8)).astype(np.float32)
    dy = wide[..., ::2]  # every other channel: not contiguous
    for relu_mask in (False, True):
        got = pool_ops._max_pool_grad_at_indices(ExecContext(np), x, z, dy, indices, ksize, strides, "SAME",
                                                 relu_mask=relu_mask)
        masked = dy * (z > 0) if relu_mask else dy
        np.testing.assert_array_equal(got, _max_pool_grad(x, z, np.ascontiguousarray(masked), 2, 2, "SAME"))
    assert calls == []
