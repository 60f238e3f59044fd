"""The allocation-saving kernel paths: convolutions in batch chunks through a reused scratch buffer,
MaxPoolGrad over tiling windows, and optimizer updates into double buffers, a block at a time. Each
is checked against a naive numpy reference or the plain formula, gradients against finite differences,
and the double buffers against what they must never do: change a committed value, or write a buffer
still referenced.
"""
import weakref

import numpy as np
import pytest

import graphexec as tf
from graphexec.ops import conv_ops, training_ops, windows, workspace
from opcheck import check_grad, check_op
from test_nn import np_conv2d

RNG = np.random.default_rng(5)


# -- convolution in chunks ----------------------------------------------------------------------------------------
@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of one or two images, so that every case runs through several chunks."""
    monkeypatch.setattr(conv_ops, "CHUNK_BYTES", 150)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", [
    ((5, 6, 6, 2), (3, 3, 2, 3), (1, 1), "SAME"), ((4, 7, 5, 3), (3, 2, 3, 2), (2, 2), "SAME"),
    ((3, 7, 8, 2), (2, 3, 2, 4), (2, 3), "VALID"), ((4, 5, 5, 1), (5, 5, 1, 2), (1, 1), "VALID"),
    ((3, 6, 6, 2), (1, 1, 2, 3), (2, 2), "SAME"), ((3, 4, 4, 2), (1, 1, 2, 3), (1, 1), "VALID")])
def test_chunked_convolution_and_its_gradients(small_chunks, x_shape, w_shape, stride, padding, conv_library):
    x, w = RNG.standard_normal(x_shape), RNG.standard_normal(w_shape)
    oh, ow, _ = windows.geometry(x_shape, w_shape[0], w_shape[1], (1, *stride, 1), padding)
    assert len(conv_ops._chunks(x_shape[0], oh * ow * int(np.prod(w_shape[:3])) * 8)) > 1

    def conv(a, b):
        return tf.nn.conv2d(a, b, strides=[1, *stride, 1], padding=padding)

    check_op(conv, lambda a, b: np_conv2d(a, b, stride, padding), [x, w], rtol=1e-10)
    check_grad(conv, [x, w])  # Conv2DBackpropInput and Conv2DBackpropFilter against finite differences


def test_float32_convolution_matches_float64(small_chunks, conv_library):
    x, w = RNG.standard_normal((6, 9, 9, 3)), RNG.standard_normal((5, 5, 3, 4))
    images = tf.placeholder(tf.float32, [None, 9, 9, 3])
    out = tf.nn.conv2d(images, tf.constant(w.astype(np.float32)), [1, 1, 1, 1], "SAME")
    loss = tf.reduce_sum(out * out)
    grads = tf.gradients(loss, [images])
    with tf.Session() as sess:
        value, (grad,) = sess.run([out, grads], {images: x.astype(np.float32)})
    np.testing.assert_allclose(value, np_conv2d(x, w, (1, 1), "SAME"), rtol=1e-4, atol=1e-4)
    assert grad.dtype == np.float32 and grad.shape == x.shape


# -- MaxPoolGrad over tiling windows ------------------------------------------------------------------------------
def _max_pool_grad(x, dy, k, padding="VALID"):
    value = tf.constant(x)
    pooled = tf.nn.max_pool(value, ksize=[1, k, k, 1], strides=[1, k, k, 1], padding=padding)
    (grad,) = tf.gradients(pooled, [value], grad_ys=[tf.constant(dy)])
    with tf.Session() as sess:
        return sess.run(grad)


def test_tiled_max_pool_grad_routes_ties_to_the_first_maximum(conv_library):
    x = np.zeros((1, 4, 4, 2), np.float32)  # all ties, as after a ReLU
    x[0, 1, 1, 0] = 1.0
    dy = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2) + 1
    grad = _max_pool_grad(x, dy, 2)
    expected = np.zeros_like(x)
    expected[0, ::2, ::2, :] = dy[0]  # the window's first element, row-major, when all tie
    expected[0, 0, 0, 0] = 0
    expected[0, 1, 1, 0] = dy[0, 0, 0, 0]  # the one strict maximum
    np.testing.assert_array_equal(grad, expected)


def test_tiled_max_pool_grad_leaves_unpooled_rows_zero_and_keeps_nan_out(conv_library):
    x = RNG.standard_normal((2, 5, 7, 3)).astype(np.float32)  # VALID 2x2: the last row and column unread
    dy = RNG.standard_normal((2, 2, 3, 3)).astype(np.float32)
    grad = _max_pool_grad(x, dy, 2)
    assert not grad[:, 4:].any() and not grad[:, :, 6:].any()
    np.testing.assert_allclose(grad.reshape(2, -1, 3).sum(axis=1), dy.reshape(2, -1, 3).sum(axis=1), rtol=1e-6)
    dy[0, 0, 0, 0] = np.nan
    grad = _max_pool_grad(x, dy, 2)
    assert np.isnan(grad).sum() == 1  # the NaN reaches its window's maximum only


# -- double-buffered optimizer updates ----------------------------------------------------------------------------
def test_an_update_writes_into_its_spare_only_on_a_cache_line():
    """A spare that starts past a cache line (a variable's first value, from an initializer) is dropped
    for a new buffer on one, so that Adam's streamed stores find all their outputs aligned every step."""
    from graphexec.runtime.context import ExecContext
    like = np.zeros(1000, np.float32)
    ctx = ExecContext(np)
    ctx.spares = {"aligned": workspace.aligned_empty(like.shape, like.dtype)}
    raw = np.empty(4000 + 2 * workspace.ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % workspace.ALIGNMENT + 16
    ctx.spares["past"] = raw[start:start + 4000].view(np.float32)
    del raw
    address = ctx.spares["aligned"].ctypes.data
    assert training_ops._buffer(ctx, "aligned", like).ctypes.data == address  # reused
    past = ctx.spares["past"].ctypes.data
    got = training_ops._buffer(ctx, "past", like)
    assert got.ctypes.data != past and got.ctypes.data % workspace.ALIGNMENT == 0
    assert got.shape == like.shape and got.dtype == like.dtype and got.flags.writeable


def test_reusable_only_when_nothing_else_references_the_array():
    like = np.zeros(3)

    def take(table):
        spare = table.pop("v")
        return workspace.reusable(spare, like)

    assert take({"v": np.zeros(3)})
    held = np.zeros(3)
    assert not take({"v": held})
    view_base = np.zeros(3)
    view = view_base[:]  # noqa: F841 - a view keeps its base referenced
    table = {"v": view_base}
    del view_base
    assert not take(table)
    exported = np.zeros(3)
    buffer = memoryview(exported)  # noqa: F841 - an exported buffer counts too
    table = {"v": exported}
    del exported
    assert not take(table)
    assert not take({"v": np.zeros(4)}) and not take({"v": np.zeros(3, np.float32)})
    # An array whose memory another array owns (aligned_empty's): reusable while only it references
    # that owner; one decoded from bytes (a value read from Redis) never: its memory is immutable.
    assert take({"v": workspace.aligned_empty((3,), np.float64)})
    assert not take({"v": np.frombuffer(np.zeros(3).tobytes(), np.float64)})
    for hold in (lambda a: a[1:], lambda a: a.base, lambda a: memoryview(a.base)):
        aligned = workspace.aligned_empty((3,), np.float64)
        held = hold(aligned)  # noqa: F841 - what keeps the memory referenced
        table = {"v": aligned}
        del aligned
        assert not take(table)


def _training(optimizer):
    """(session, step(x) -> None, fail_step(x) -> None, variables) for a small model, float32."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [8, 5])
        w = tf.Variable(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3))
        b = tf.Variable(np.zeros(3, np.float32))
        loss = tf.reduce_sum(tf.square(tf.matmul(x, w) + b))
        train = optimizer.minimize(loss)
        with tf.control_dependencies([train]):  # fails after the updates ran: x with a NaN
            checked = tf.debugging.check_numerics(x, "bad batch")
        init = tf.global_variables_initializer()
    sess = tf.Session(graph=graph)
    sess.run(init)
    return sess, (lambda v: sess.run(train, {x: v})), (lambda v: sess.run(checked, {x: v})), [w, b]


OPTIMIZERS = {"sgd": lambda: tf.train.GradientDescentOptimizer(0.01),
              "momentum": lambda: tf.train.MomentumOptimizer(0.01, 0.9),
              "adam": lambda: tf.train.AdamOptimizer(0.01),
              "rmsprop": lambda: tf.train.RMSPropOptimizer(0.01, momentum=0.5)}
BATCHES = [np.linspace(-1, 1, 40, dtype=np.float32).reshape(8, 5) * (i + 1) for i in range(6)]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_failed_run_leaves_variables_unchanged_and_training_continues_identically(name):
    sess, step, fail_step, variables = _training(OPTIMIZERS[name]())
    reference, reference_step, _, reference_variables = _training(OPTIMIZERS[name]())
    bad = BATCHES[0].copy()
    bad[0, 0] = np.nan
    for i, batch in enumerate(BATCHES):
        step(batch)
        reference_step(batch)
        before = sess.run(variables)
        with pytest.raises(tf.errors.InvalidArgumentError, match="bad batch"):
            fail_step(bad if i % 2 else bad * 2)  # the updates ran, then a later op failed
        for kept, value in zip(before, sess.run(variables)):
            np.testing.assert_array_equal(kept, value)
    for ours, theirs in zip(sess.run(variables), reference.run(reference_variables)):
        np.testing.assert_array_equal(ours, theirs)


def test_adam_writes_into_the_previous_buffer_and_matches_the_formula():
    sess, step, _, (w, _) = _training(tf.train.AdamOptimizer(0.01, epsilon=1e-7))
    store = sess._runner.core.store

    def stored():
        return store.read_variables(next(iter(store._containers)))[1]

    value, m, v = (np.array(sess.run(w)), np.zeros((5, 3), np.float32), np.zeros((5, 3), np.float32))
    arrays = []
    for t, batch in enumerate(BATCHES, 1):
        grad = 2 * batch.T @ (batch @ value + np.array(sess.run("Variable_1:0")))
        step(batch)
        lr_t = np.float32(0.01) * np.sqrt(1 - np.float32(0.999) ** t) / (1 - np.float32(0.9) ** t)
        m = m + (grad - m) * (1 - np.float32(0.9))
        v = v + (grad * grad - v) * (1 - np.float32(0.999))
        value = value - lr_t * m / (np.sqrt(v) + np.float32(1e-7))
        np.testing.assert_allclose(sess.run(w), value, rtol=1e-5, atol=1e-6)
        arrays.append(weakref.ref(stored()["Variable"]))
    # Each step from the third writes into the buffer of the step before the last, not into a new array;
    # the second writes into the initial value's only if that starts on a cache line (else into a new
    # buffer that does), so two buffers on cache lines take turns (Adam's streamed stores need them).
    assert arrays[5]() is not None and arrays[5]() is arrays[3]() is arrays[1]()
    assert arrays[4]() is not None and arrays[4]() is arrays[2]() is arrays[0]()
    assert arrays[0]().ctypes.data % workspace.ALIGNMENT == arrays[1]().ctypes.data % workspace.ALIGNMENT == 0
    assert not arrays[5]().flags.writeable  # and a committed value is read-only


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_values_fetched_before_a_step_never_change_after_it(name):
    sess, step, _, variables = _training(OPTIMIZERS[name]())
    kept = []
    for batch in BATCHES:
        fetched = sess.run(variables)
        kept.append((fetched, [np.array(v) for v in fetched]))
        step(batch)  # two steps later the buffer of `fetched` would be a spare, were it not referenced
    for fetched, copies in kept:
        for value, copy in zip(fetched, copies):
            np.testing.assert_array_equal(value, copy)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_large_variables_update_in_blocks_to_the_same_bits(name, monkeypatch):
    """A variable above training_ops.BLOCK_ELEMENTS is updated a block at a time (the last one partial);
    its values, and its slots', are the bits of one pass over the whole array."""
    rng = np.random.default_rng(4)
    start, batches = rng.standard_normal((1001, 7)).astype(np.float32), [
        rng.standard_normal((6, 1001)).astype(np.float32) for _ in range(4)]

    def trained(block: int) -> list:
        monkeypatch.setattr(training_ops, "BLOCK_ELEMENTS", block)
        with tf.Graph().as_default() as graph:
            x = tf.placeholder(tf.float32, [None, 1001])
            w = tf.Variable(start)
            train = OPTIMIZERS[name]().minimize(tf.reduce_mean(tf.square(tf.matmul(x, w))))
            init = tf.global_variables_initializer()
        with tf.Session(graph=graph) as sess:
            sess.run(init)
            for batch in batches:
                sess.run(train, {x: batch})
            return sess.run(graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES))

    blocked, whole = trained(1000), trained(10 ** 9)
    assert len(blocked) == len(whole) >= 1 and not np.array_equal(blocked[0], start)
    for ours, theirs in zip(blocked, whole, strict=True):
        np.testing.assert_array_equal(ours, theirs)
