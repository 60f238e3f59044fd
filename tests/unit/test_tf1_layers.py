"""tf.layers numerics against real TensorFlow (golden/tf1_api/layers.npz from make_layers.py), their gradients
against finite differences, dropout's statistics, tf.contrib.layers naming and the l2 regularizer."""
import os

import numpy as np
import pytest

import graphexec as tf

from opcheck import check_grad
from tf1_layer_programs import run_all

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "tf1_api", "layers.npz")


def test_layer_outputs_match_tensorflow():
    want = dict(np.load(GOLDEN))
    got = run_all(tf)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)


# -- gradients: inputs and weights against central finite differences (float64) ---------------------------
def _central_difference(loss_at, value, delta=1e-6):
    """d loss / d value by central differences; loss_at(v) is the loss with `value` replaced by v."""
    grad = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        up, down = value.copy(), value.copy()
        up[index] += delta
        down[index] -= delta
        grad[index] = (loss_at(up) - loss_at(down)) / (2 * delta)
    return grad


def _check_layer_grads(build, input_shape, seed=0):
    """tf.gradients of sum(w * layer(x)) w.r.t. x and every trainable variable, against central differences
    (a variable's neighbours are loaded into the session)."""
    rng = np.random.default_rng(seed)
    x_value = rng.standard_normal(input_shape)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float64, input_shape)
        out = build(x)
        loss = tf.reduce_sum(out * rng.standard_normal(out.shape.as_list()))
        variables = tf.trainable_variables()
        grads = tf.gradients(loss, [x, *variables])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            computed = sess.run(grads, {x: x_value})
            numeric = _central_difference(lambda v: sess.run(loss, {x: v}), x_value)
            np.testing.assert_allclose(computed[0], numeric, rtol=1e-5, atol=1e-6, err_msg="d loss / d input")
            for variable, grad in zip(variables, computed[1:]):
                value = sess.run(variable)

                def loss_at(v, variable=variable):
                    variable.load(v, sess)
                    return sess.run(loss, {x: x_value})

                numeric = _central_difference(loss_at, value)
                variable.load(value, sess)
                np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6, err_msg=variable.name)
    return variables


def dense_tanh(x):
    return tf.layers.dense(x, 3, activation=tf.tanh, bias_initializer=tf.random_normal_initializer(seed=1))


def conv_same_s2(x):
    return tf.layers.conv2d(x, 2, 3, strides=2, padding="same", bias_initializer=tf.ones_initializer())


def conv1d_valid(x):
    return tf.layers.conv1d(x, 2, 2, strides=2)


def tconv_same_s2(x):
    return tf.layers.conv2d_transpose(x, 2, 3, strides=2, padding="same")


def tconv_valid(x):
    return tf.layers.conv2d_transpose(x, 2, 2, strides=1, padding="valid")


def bn_training(x):
    return tf.layers.batch_normalization(x, training=True, gamma_initializer=tf.random_normal_initializer(seed=2))


def bn_inference(x):
    return tf.layers.batch_normalization(x, training=False, beta_initializer=tf.constant_initializer(0.5))


def no_weights(x):
    pooled = tf.layers.max_pooling2d(x, 2, 1) + tf.layers.average_pooling2d(x, 2, 2, padding="same")[:, :2, :2]
    return tf.layers.flatten(tf.layers.dropout(pooled, training=False))


@pytest.mark.parametrize("build, shape", [(dense_tanh, (3, 4)), (conv_same_s2, (2, 5, 5, 2)),
                                          (conv1d_valid, (2, 6, 2)), (tconv_same_s2, (1, 3, 3, 2)),
                                          (tconv_valid, (2, 2, 3, 1)), (bn_training, (5, 3)),
                                          (bn_training, (2, 2, 2, 3)), (bn_inference, (2, 2, 2, 3)),
                                          (no_weights, (2, 3, 3, 2))],
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_layer_gradients_match_finite_differences(build, shape):
    _check_layer_grads(build, shape)


# -- dropout ------------------------------------------------------------------------------------------------
def test_dropout_drops_at_its_rate_and_scales_the_rest_only_when_training():
    x = tf.ones([200, 100])
    training = tf.placeholder(tf.bool, [])
    flagged = tf.layers.dropout(x, rate=0.3, training=training)
    always = tf.layers.dropout(x, rate=0.3, training=True)
    with tf.Session() as sess:
        off = sess.run(flagged, {training: False})
        on, first, second = sess.run(flagged, {training: True}), sess.run(always), sess.run(always)
    np.testing.assert_array_equal(off, np.ones((200, 100)))
    for values in (on, first):
        kept = values != 0
        assert abs(1 - kept.mean() - 0.3) < 0.02
        np.testing.assert_allclose(values[kept], 1 / 0.7, rtol=1e-6)
    assert ((first != 0) != (second != 0)).any()  # each run draws a new mask


def test_seeded_dropout_repeats_its_masks_in_a_new_graph():
    masks = []
    for _ in range(2):
        with tf.Graph().as_default():
            tf.set_random_seed(7)
            dropped = tf.layers.dropout(tf.ones([50, 40]), rate=0.5, training=True)
            with tf.Session() as sess:
                masks.append([sess.run(dropped) != 0 for _ in range(2)])
    np.testing.assert_array_equal(masks[0], masks[1])
    assert (masks[0][0] != masks[0][1]).any()


def test_seeded_layers_build_the_same_weights_in_new_graphs():
    values = []
    for _ in range(2):
        with tf.Graph().as_default():
            tf.set_random_seed(3)
            tf.layers.dense(tf.ones([2, 4]), 3)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                values.append(sess.run(tf.trainable_variables()))
    for a, b in zip(*values):
        np.testing.assert_array_equal(a, b)


def test_batch_norm_updates_run_with_the_train_op_through_update_ops():
    x = tf.placeholder(tf.float32, [None, 2])
    y = tf.layers.batch_normalization(x, training=True, momentum=0.5)
    loss = tf.reduce_sum(tf.square(y))
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    batch = np.array([[1.0, 10.0], [3.0, 20.0]], np.float32)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train, {x: batch})
        mean, variance = sess.run(["batch_normalization/moving_mean:0", "batch_normalization/moving_variance:0"])
    np.testing.assert_allclose(mean, 0.5 * batch.mean(0), rtol=1e-6)
    np.testing.assert_allclose(variance, 0.5 + 0.5 * batch.var(0), rtol=1e-6)  # 2-D input: biased variance


# -- tf.contrib.layers --------------------------------------------------------------------------------------
def test_contrib_layers_name_variables_as_tf1_contrib():
    x = tf.placeholder(tf.float32, [None, 6, 6, 1])
    with tf.variable_scope("net"):
        conv = tf.contrib.layers.conv2d(x, 4, 3)
        conv2 = tf.contrib.layers.conv2d(conv, 2, [3, 3], stride=2, scope="second")
        flat = tf.contrib.layers.flatten(conv2)
        logits = tf.contrib.layers.fully_connected(flat, 3, activation_fn=None,
                                                   weights_regularizer=tf.contrib.layers.l2_regularizer(0.1))
        hidden = tf.contrib.layers.fully_connected(flat, 5, biases_initializer=None)
    assert [v.name for v in tf.global_variables()] == [
        "net/Conv/weights:0", "net/Conv/biases:0", "net/second/weights:0", "net/second/biases:0",
        "net/fully_connected/weights:0", "net/fully_connected/biases:0", "net/fully_connected_1/weights:0"]
    assert tf.get_collection(tf.GraphKeys.MODEL_VARIABLES) == tf.global_variables()
    assert [t.name for t in (conv, conv2, flat, logits, hidden)] == [
        "net/Conv/Relu:0", "net/second/Relu:0", "net/Flatten/flatten/Reshape:0",
        "net/fully_connected/BiasAdd:0", "net/fully_connected_1/Relu:0"]
    assert conv.shape.as_list() == [None, 6, 6, 4] and conv2.shape.as_list() == [None, 3, 3, 2]
    (penalty,) = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
    assert penalty.name == "net/fully_connected/weights/Regularizer/l2_regularizer:0"
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        weights, value = sess.run(["net/fully_connected/weights:0", penalty])
    np.testing.assert_allclose(value, 0.1 * np.sum(weights ** 2) / 2, rtol=1e-5)


def test_contrib_regularizers_and_initializers():
    assert tf.contrib.layers.l2_regularizer(0.0)(tf.ones([2])) is None
    with pytest.raises(ValueError, match="scale cannot be an integer"):
        tf.contrib.layers.l2_regularizer(1)
    with pytest.raises(ValueError, match="less than 0"):
        tf.contrib.layers.l1_regularizer(-0.5)
    l1 = tf.contrib.layers.l1_regularizer(0.5)(tf.constant([-1.0, 2.0, -3.0]))
    normal = tf.contrib.layers.variance_scaling_initializer(seed=1)([300, 200])
    xavier = tf.contrib.layers.xavier_initializer(seed=1)([300, 200])
    with tf.Session() as sess:
        l1_value, normal_value, xavier_value = sess.run([l1, normal, xavier])
    assert l1_value == pytest.approx(3.0)
    assert normal_value.std() == pytest.approx(np.sqrt(1.3 * 2.0 / 300) * 0.8796, rel=0.03)  # truncated at 2 sigma
    limit = np.sqrt(6.0 / 500)
    assert np.abs(xavier_value).max() <= limit and xavier_value.std() == pytest.approx(limit / np.sqrt(3), rel=0.03)


# -- tf.nn.conv2d_transpose ---------------------------------------------------------------------------------
def _np_conv2d_transpose(x, w, output_shape, stride, padding):
    """Each input pixel scatters w * x into the output window it would read in the forward convolution."""
    n, h, width, _ = output_shape
    kh, kw = w.shape[:2]
    if padding == "SAME":
        top = max((x.shape[1] - 1) * stride + kh - h, 0) // 2
        left = max((x.shape[2] - 1) * stride + kw - width, 0) // 2
    else:
        top = left = 0
    out = np.zeros((n, h + kh + stride, width + kw + stride, w.shape[2]))
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            out[:, i * stride:i * stride + kh, j * stride:j * stride + kw] += np.einsum("nc,hwoc->nhwo", x[:, i, j], w)
    return out[:, top:top + h, left:left + width]


@pytest.mark.parametrize("in_size, out_size, stride, padding", [(3, 6, 2, "SAME"), (3, 7, 2, "VALID"),
                                                                 (4, 4, 1, "SAME"), (3, 5, 2, "SAME")])
def test_conv2d_transpose_matches_numpy_and_its_gradients_finite_differences(in_size, out_size, stride, padding):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, in_size, in_size, 3)), rng.standard_normal((3, 3, 2, 3))
    shape = [2, out_size, out_size, 2]
    got = tf.nn.conv2d_transpose(x, w, shape, [1, stride, stride, 1], padding)
    assert got.shape.as_list() == shape
    with tf.Session() as sess:
        np.testing.assert_allclose(sess.run(got), _np_conv2d_transpose(x, w, shape, stride, padding), atol=1e-10)
    check_grad(lambda a, b: tf.nn.conv2d_transpose(a, b, shape, [1, stride, stride, 1], padding), [x, w],
               modes=("feed",))


def test_conv2d_transpose_rejects_an_output_shape_the_input_cannot_come_from():
    with pytest.raises(tf.errors.InvalidArgumentError, match="out_backprop .* does not match"):
        tf.nn.conv2d_transpose(tf.ones([1, 3, 3, 2]), tf.ones([3, 3, 4, 2]), [1, 9, 9, 4], [1, 2, 2, 1], "SAME")
    sizes = tf.placeholder(tf.int32, [4])
    result = tf.nn.conv2d_transpose(tf.ones([1, 3, 3, 2]), tf.ones([3, 3, 4, 2]), sizes, [1, 2, 2, 1], "SAME")
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError, match="does not match"):
        sess.run(result, {sizes: [1, 9, 9, 4]})
