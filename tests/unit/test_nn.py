"""tf.nn against numpy references (naive loops for convolution and pooling), stability for large logits,
dropout's seeding and scaling, and every nn op's gradient against finite differences (opcheck.check_grad)."""
import numpy as np
import pytest

import graphexec as tf

from opcheck import check_grad, check_op

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((4, 5)) * 3
LABELS = RNG.random((4, 5))
LABELS /= LABELS.sum(axis=1, keepdims=True)
SPARSE = np.array([0, 4, 2, 1])
HUGE = np.array([[1000.0, -1000.0, 0.0], [-800.0, -790.0, -805.0], [50.0, 50.0, 50.0]])


# -- numpy references ---------------------------------------------------------------------------------------
def np_log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def np_softmax(x, axis=-1):
    return np.exp(np_log_softmax(x, axis))


def np_sigmoid_xent(logits, labels):
    return np.logaddexp(0, logits) - logits * labels


def np_padding(size, window, stride, padding):
    if padding == "VALID":
        return (size - window) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2, total - total // 2


def np_windows(x, kh, kw, stride, padding, fill):
    """Yield (i, j, window [n, kh, kw, c]) for every output position, by plain loops."""
    n, h, w, c = x.shape
    oh, top, bottom = np_padding(h, kh, stride[0], padding)
    ow, left, right = np_padding(w, kw, stride[1], padding)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    for i in range(oh):
        for j in range(ow):
            yield i, j, padded[:, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw, :], (oh, ow)


def np_conv2d(x, w, stride, padding):
    out = None
    for i, j, window, (oh, ow) in np_windows(x, w.shape[0], w.shape[1], stride, padding, 0.0):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
        out[:, i, j, :] = np.einsum("nhwc,hwco->no", window, w)
    return out


def np_pool(x, k, stride, padding, kind):
    out = None
    valid = np.ones(x.shape[:3] + (1,))
    counts = {(i, j): win for i, j, win, _ in np_windows(valid, k[0], k[1], stride, padding, 0.0)}
    for i, j, window, (oh, ow) in np_windows(x, k[0], k[1], stride, padding, -np.inf if kind == "max" else 0.0):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
        if kind == "max":
            out[:, i, j, :] = window.max(axis=(1, 2))
        else:
            out[:, i, j, :] = window.sum(axis=(1, 2)) / counts[(i, j)].sum(axis=(1, 2))
    return out


# -- activations ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn, np_fn", [
    (tf.nn.relu, lambda x: np.maximum(x, 0)),
    (tf.nn.relu6, lambda x: np.clip(x, 0, 6)),
    (tf.nn.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    (tf.nn.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x)),
    (lambda x: tf.nn.leaky_relu(x, alpha=0.01), lambda x: np.where(x > 0, x, 0.01 * x)),
    (tf.nn.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    (tf.nn.tanh, np.tanh),
], ids=["relu", "relu6", "elu", "leaky_relu", "leaky_relu_alpha", "sigmoid", "tanh"])
def test_activations(fn, np_fn):
    x = np.linspace(-8, 8, 24).reshape(4, 6)
    check_op(fn, np_fn, [x], dtypes=[tf.float32])
    check_op(fn, np_fn, [x], dtypes=[tf.float64])


@pytest.mark.parametrize("fn", [tf.nn.relu, tf.nn.relu6, tf.nn.elu, tf.nn.leaky_relu, tf.nn.softmax,
                                tf.nn.log_softmax, lambda x: tf.nn.softmax(x, axis=0), tf.nn.l2_loss,
                                lambda x: tf.nn.bias_add(x, [1.0, 2.0, 3.0, 4.0, 5.0])],
                         ids=["relu", "relu6", "elu", "leaky_relu", "softmax", "log_softmax", "softmax_axis0",
                              "l2_loss", "bias_add"])
def test_activation_gradients(fn):
    check_grad(fn, [LOGITS + 0.05])  # away from the kinks at 0


def test_relu_on_integers_and_its_gradient_is_zero_at_zero():
    check_op(tf.nn.relu, lambda x: np.maximum(x, 0), [np.array([-2, 0, 3])], dtypes=[tf.int32])
    x = tf.constant([-1.0, 0.0, 2.0])
    (g,) = tf.gradients(tf.nn.relu(x), x)
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(g), [0.0, 0.0, 1.0])


# -- softmax and cross-entropies ---------------------------------------------------------------------------
def test_softmax_and_log_softmax_are_stable_for_large_logits():
    check_op(tf.nn.softmax, np_softmax, [HUGE], dtypes=[tf.float32])
    check_op(tf.nn.log_softmax, np_log_softmax, [HUGE], dtypes=[tf.float64])
    check_op(lambda x: tf.nn.softmax(x, axis=0), lambda x: np_softmax(x, 0), [HUGE], dtypes=[tf.float64])


def test_softmax_cross_entropy_matches_numpy_and_is_stable():
    labels = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    expected = lambda x, y: -(y * np_log_softmax(x)).sum(-1)  # noqa: E731
    for fn in (tf.nn.softmax_cross_entropy_with_logits, tf.nn.softmax_cross_entropy_with_logits_v2):
        check_op(lambda x, y, fn=fn: fn(labels=y, logits=x), expected, [HUGE, labels], dtypes=tf.float64)
    check_op(lambda x, y: tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=x, axis=0),
             lambda x, y: -(y * np_log_softmax(x, 0)).sum(0), [HUGE, labels.T], dtypes=tf.float32)


def test_sparse_softmax_cross_entropy_matches_numpy_and_rejects_bad_labels():
    sparse = np.array([0, 2, 1])
    check_op(lambda x, y: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x),
             lambda x, y: -np_log_softmax(x)[np.arange(3), y], [HUGE, sparse], dtypes=[tf.float32, tf.int64])
    logits = tf.constant(HUGE, tf.float32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.constant([0, 3, 1]), logits=logits)
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError, match="label value of 3"):
        sess.run(loss)


def test_sigmoid_cross_entropy_is_stable():
    labels = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 1.0], [0.3, 0.0, 1.0]])
    check_op(lambda x, y: tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x), np_sigmoid_xent,
             [HUGE, labels], dtypes=tf.float64)


def test_cross_entropy_gradients():
    check_grad(lambda x, y: tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=x), [LOGITS, LABELS])
    check_grad(lambda x: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=SPARSE, logits=x), [LOGITS])
    check_grad(lambda x, y: tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x), [LOGITS + 0.05, LABELS])
    logits, labels = tf.placeholder(tf.float64, [4, 5]), tf.placeholder(tf.float64, [4, 5])
    v1 = tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    assert tf.gradients(v1, labels) == [None]  # TF1's version stops the gradient into labels


def test_cross_entropy_gradient_is_finite_for_huge_logits():
    x = tf.constant(HUGE)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=[0, 2, 1], logits=x)
    (g,) = tf.gradients(tf.reduce_sum(loss), x)
    with tf.Session() as sess:
        grad = sess.run(g)
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad, np_softmax(HUGE) - np.eye(3)[[0, 2, 1]], atol=1e-12)


# -- convolution and pooling ----------------------------------------------------------------------------------
CONV_CASES = [((2, 5, 5, 3), (3, 3, 3, 4), 1, "SAME"), ((2, 5, 5, 3), (3, 3, 3, 4), 2, "SAME"),
              ((2, 6, 5, 2), (2, 3, 2, 3), 1, "VALID"), ((1, 7, 6, 2), (3, 2, 2, 2), (2, 3), "VALID"),
              ((2, 4, 4, 1), (1, 1, 1, 2), 1, "SAME")]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONV_CASES)
def test_conv2d_matches_a_naive_convolution(x_shape, w_shape, stride, padding):
    x, w = RNG.standard_normal(x_shape), RNG.standard_normal(w_shape)
    strides = (stride, stride) if isinstance(stride, int) else stride
    check_op(lambda a, b: tf.nn.conv2d(a, b, strides=[1, *strides, 1], padding=padding),
             lambda a, b: np_conv2d(a, b, strides, padding), [x, w], rtol=1e-10)
    check_grad(lambda a, b: tf.nn.conv2d(a, b, strides=[1, *strides, 1], padding=padding), [x, w])


def test_conv2d_backprop_ops_have_gradients():
    x, w = RNG.standard_normal((2, 5, 5, 2)), RNG.standard_normal((3, 3, 2, 3))

    def input_grad(a, b):
        (g,) = tf.gradients(tf.reduce_sum(tf.square(tf.nn.conv2d(a, b, [1, 2, 2, 1], "SAME"))), [a])
        return g

    check_grad(input_grad, [x, w])


def test_conv2d_rejects_mismatched_depth_and_other_layouts():
    x = tf.placeholder(tf.float32, [1, 5, 5, 3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="depth 3 must match"):
        tf.nn.conv2d(x, tf.zeros([3, 3, 2, 4]), strides=1, padding="SAME")
    with pytest.raises(tf.errors.InvalidArgumentError, match="NHWC"):
        tf.nn.conv2d(x, tf.zeros([3, 3, 3, 4]), strides=1, padding="SAME", data_format="NCHW")


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("k, stride, padding", [((2, 2), (2, 2), "VALID"), ((2, 2), (2, 2), "SAME"),
                                                ((3, 3), (1, 1), "SAME"), ((3, 2), (2, 1), "VALID")])
def test_pooling_matches_naive_loops(kind, k, stride, padding):
    x = RNG.standard_normal((2, 5, 5, 3))
    pool = tf.nn.max_pool if kind == "max" else tf.nn.avg_pool
    fn = lambda a: pool(a, ksize=[1, *k, 1], strides=[1, *stride, 1], padding=padding)  # noqa: E731
    check_op(fn, lambda a: np_pool(a, k, stride, padding, kind), [x], rtol=1e-10)
    check_grad(fn, [x])


# -- dropout ---------------------------------------------------------------------------------------------------
def test_dropout_zeroes_a_fraction_and_scales_the_rest():
    x = tf.ones([200, 100])
    dropped = tf.nn.dropout(x, keep_prob=0.75, seed=3)
    with tf.Session() as sess:
        value = sess.run(dropped)
    kept = value != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(value[kept], 1 / 0.75, rtol=1e-6)


def test_dropout_is_reproducible_with_seeds_and_rate_equals_one_minus_keep_prob():
    def masks():
        graph = tf.Graph()
        with graph.as_default():
            tf.set_random_seed(7)
            x = tf.ones([10, 10])
            a, b = tf.nn.dropout(x, keep_prob=0.5), tf.nn.dropout(x, rate=0.5, seed=2)
            with tf.Session(graph=graph) as sess:
                return sess.run([a, b]), sess.run([a, b])

    first, again = masks(), masks()
    np.testing.assert_array_equal(first[0][0], again[0][0])
    np.testing.assert_array_equal(first[1][1], again[1][1])
    assert not np.array_equal(first[0][0], first[1][0])  # each run draws a new mask


def test_dropout_with_keep_prob_fed_one_is_the_identity_and_checks_its_arguments():
    x = tf.constant(RNG.standard_normal((3, 4)).astype(np.float32))
    keep = tf.placeholder(tf.float32, [])
    dropped = tf.nn.dropout(x, keep_prob=keep)
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(dropped, {keep: 1.0}), sess.run(x))
    with pytest.raises(ValueError):
        tf.nn.dropout(x, keep_prob=0.5, rate=0.5)
    with pytest.raises(ValueError):
        tf.nn.dropout(x, keep_prob=1.5)


def test_dropout_gradient_is_the_mask_scaled():
    x = tf.placeholder(tf.float32, [50])
    y = tf.nn.dropout(x, keep_prob=0.5, seed=1)
    (g,) = tf.gradients(tf.reduce_sum(y), x)
    with tf.Session() as sess:
        value, grad = sess.run([y, g], {x: np.ones(50)})
    np.testing.assert_array_equal(grad, value)  # with x = 1 the output is the scaled mask itself


# -- normalization and small helpers ------------------------------------------------------------------------
def test_moments_and_batch_normalization():
    x = RNG.standard_normal((4, 3, 2))
    check_op(lambda a: tf.nn.moments(a, axes=[0, 1]), lambda a: (a.mean((0, 1)), a.var((0, 1))), [x])
    check_op(lambda a: tf.nn.moments(a, axes=[0], keep_dims=True),
             lambda a: (a.mean(0, keepdims=True), a.var(0, keepdims=True)), [x])
    scale, offset = np.array([1.5, 0.5]), np.array([0.1, -0.2])

    def normalized(a, s, o):
        mean, variance = tf.nn.moments(a, axes=[0, 1])
        return tf.nn.batch_normalization(a, mean, variance, o, s, 1e-3)

    check_op(normalized, lambda a, s, o: (a - a.mean((0, 1))) / np.sqrt(a.var((0, 1)) + 1e-3) * s + o,
             [x, scale, offset])
    check_grad(normalized, [x, scale, offset])
    check_grad(lambda a: tf.nn.moments(a, axes=[1]), [x])


def test_l2_loss_and_bias_add():
    x = RNG.standard_normal((3, 4))
    check_op(tf.nn.l2_loss, lambda a: (a * a).sum() / 2, [x])
    check_op(lambda a, b: tf.nn.bias_add(a, b), lambda a, b: a + b, [x, np.arange(4.0)])
    with pytest.raises(ValueError, match="does not match"):
        tf.nn.bias_add(tf.constant(x), tf.constant([1.0, 2.0]))
