"""tf.gradients: every differentiable op against finite differences (through opcheck.check_grad), and the
engine's contract: None for unconnected inputs, clear errors for ops without gradients, variables as
xs, grad_ys, stop_gradient, and no recursion on 100,000-node graphs."""
import numpy as np
import pytest

import graphexec as tf
from graphexec.ops.registry import REGISTRY

from opcheck import check_binary_grad, check_grad

RNG = np.random.default_rng(0)
A = RNG.standard_normal((2, 3, 4))
M = RNG.standard_normal((3, 4))
POSITIVE = np.abs(M) + 0.5


# -- elementwise math ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn, low, high", [
    (tf.add, -2, 2), (tf.subtract, -2, 2), (tf.multiply, -2, 2), (tf.truediv, 0.5, 2), (tf.pow, 0.5, 2),
    (tf.maximum, -2, 2), (tf.minimum, -2, 2), (tf.mod, 0.3, 2), (lambda x, y: x + y * x - y / 3, -2, 2),
    (tf.squared_difference, -2, 2),
], ids=["add", "sub", "mul", "div", "pow", "maximum", "minimum", "mod", "expression", "squared_difference"])
def test_binary_ops_across_broadcast_shapes(fn, low, high):
    check_binary_grad(fn, low=low, high=high)


def test_pow_gradient_for_the_exponent_is_zero_where_the_base_is_not_positive():
    x, y = tf.constant([-2.0, 0.0, 3.0]), tf.constant([2.0, 2.0, 0.5])
    dx, dy = tf.gradients(tf.pow(x, y), [x, y])
    with tf.Session() as sess:
        np.testing.assert_allclose(sess.run(dx), [-4.0, 0.0, 0.5 / np.sqrt(3.0)], rtol=1e-6)
        np.testing.assert_allclose(sess.run(dy), [0.0, 0.0, np.sqrt(3.0) * np.log(3.0)], rtol=1e-6)


@pytest.mark.parametrize("fn", [tf.negative, tf.abs, tf.sign, tf.square, tf.exp, tf.sin, tf.cos, tf.tanh,
                                tf.sigmoid, tf.identity, lambda x: tf.add_n([x, x * 2, tf.sin(x)])],
                         ids=lambda f: getattr(f, "__name__", "fn"))
def test_unary_ops(fn):
    check_grad(fn, [M])


@pytest.mark.parametrize("fn", [tf.sqrt, tf.rsqrt, tf.log, tf.log1p])
def test_unary_ops_on_positive_inputs(fn):
    check_grad(fn, [POSITIVE])


def test_where_selects_gradients_and_broadcasts():
    condition = RNG.standard_normal((3, 4)) > 0
    check_grad(lambda c, x, y: tf.where(c, x, y), [condition, M, RNG.standard_normal((3, 4))])
    check_grad(lambda c, x, y: tf.where(c, x, y), [condition, M, RNG.standard_normal(4)])


def test_cast_between_float_types_passes_the_gradient_and_stops_at_integers():
    check_grad(lambda x: tf.cast(tf.cast(x, tf.float32), tf.float64) * 3.0, [np.array([0.5, -1.5, 2.25])],
               delta=1e-2, rtol=1e-3)
    x = tf.placeholder(tf.float32, [3])
    assert tf.gradients(tf.cast(tf.cast(x, tf.int32), tf.float32), x) == [None]


def test_clip_by_value_passes_the_gradient_only_inside_the_range():
    check_grad(lambda x: tf.clip_by_value(x, -0.5, 0.7), [M])


# -- matmul -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_with_transposes(transpose_a, transpose_b):
    a = RNG.standard_normal((4, 3) if transpose_a else (3, 4))
    b = RNG.standard_normal((5, 4) if transpose_b else (4, 5))
    check_grad(lambda x, y: tf.matmul(x, y, transpose_a=transpose_a, transpose_b=transpose_b), [a, b])


def test_batched_matmul_with_broadcast_batch_dims():
    check_grad(tf.matmul, [RNG.standard_normal((2, 1, 3, 4)), RNG.standard_normal((3, 4, 2))])


# -- reductions ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduce", [tf.reduce_sum, tf.reduce_mean, tf.reduce_max, tf.reduce_min, tf.reduce_prod],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [None, 0, [0, 2], -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(reduce, axis, keepdims):
    check_grad(lambda x: reduce(x, axis=axis, keepdims=keepdims), [A])


def test_max_shares_the_gradient_among_ties_and_prod_handles_zeros():
    check_grad(lambda x: tf.reduce_max(x, axis=1), [np.array([[1.0, 3.0, 3.0], [2.0, 0.5, 2.0]])], modes=("feed",))
    check_grad(lambda x: tf.reduce_prod(x, axis=1), [np.array([[1.5, 0.0, 2.0], [0.0, 0.0, 3.0]])])


def test_reduction_gradients_when_the_input_rank_is_unknown():
    x = tf.placeholder(tf.float64)
    value = RNG.standard_normal((2, 3))
    grads = tf.gradients([tf.reduce_sum(x, axis=1) * [1.0, 2.0], tf.reduce_mean(x, axis=-1), tf.reduce_max(x)], x)
    with tf.Session() as sess:
        got = sess.run(grads[0], {x: value})
    expected = np.array([[1.0], [2.0]]) + 1 / 3
    expected = expected + (value == value.max())
    np.testing.assert_allclose(got, expected)


# -- shape manipulation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda x: tf.reshape(x, [4, -1]),
    lambda x: tf.transpose(x, [2, 0, 1]),
    lambda x: tf.transpose(x),
    lambda x: tf.expand_dims(x, 1),
    lambda x: tf.squeeze(x[:, :1], [1]),
    lambda x: x[:, ::-2, 1:3],
    lambda x: x[1, ..., tf.newaxis, 2],
    lambda x: x[-1],
    lambda x: tf.slice(x, [0, 1, 1], [2, 2, -1]),
    lambda x: tf.split(x, 2, axis=0)[1],
    lambda x: tf.split(x, [1, 2], axis=1),
    lambda x: tf.unstack(x, num=4, axis=2)[1:3],
    lambda x: tf.gather(x, [2, 0, 2], axis=1),
    lambda x: tf.gather(x, [[1, 0], [1, 1]]),
    lambda x: tf.gather(x, [3, 0], axis=2),
    lambda x: tf.pad(x, [[1, 0], [0, 2], [1, 1]]),
    lambda x: tf.pad(x, [[1, 0], [0, 2], [1, 1]], mode="REFLECT"),
    lambda x: tf.pad(x, [[1, 0], [0, 2], [1, 2]], mode="SYMMETRIC"),
    lambda x: tf.tile(x, [2, 1, 3]),
    lambda x: tf.broadcast_to(x[:, :1], [3, 2, 5, 4]),
    lambda x: tf.fill([2, 3], tf.reduce_sum(x)),
    lambda x: x * tf.zeros_like(x) + tf.ones_like(x) * x,
], ids=["reshape", "transpose", "transpose_default", "expand_dims", "squeeze", "strided_slice", "newaxis_ellipsis",
        "index", "slice", "split", "split_sizes", "unstack", "gather_axis1", "gather_2d_indices", "gather_last_axis",
        "pad", "pad_reflect", "pad_symmetric", "tile", "broadcast_to", "fill", "zeros_like_ones_like"])
def test_array_ops(fn):
    check_grad(fn, [A])


def test_concat_and_stack():
    b = RNG.standard_normal((2, 2, 4))
    check_grad(lambda x, y: tf.concat([x, y], 1), [A, b])
    check_grad(lambda x, y: tf.concat([x, y * 2, x], -2), [A, b])
    check_grad(lambda x, y: tf.stack([x, y], axis=1), [A, A * 2])


@pytest.mark.parametrize("inner", [
    lambda x: tf.sin(x[:, 1:]) * x[:, :-1],
    lambda x: tf.sin(x) * tf.reduce_sum(x, 0),
    lambda x: tf.sin(tf.gather(x, [0, 2, 2])),
    lambda x: tf.sin(tf.pad(x, [[1, 1], [2, 1]], mode="REFLECT")),
    lambda x: tf.sin(tf.nn.avg_pool(x[None, :, :, None], [1, 2, 2, 1], [1, 1, 1, 1], "SAME")),
    lambda x: tf.square(tf.nn.relu(x)),
], ids=["strided_slice", "broadcast", "gather", "mirror_pad", "avg_pool", "relu"])
def test_second_derivatives_through_the_gradient_ops(inner):
    def first_derivative(x):
        (g,) = tf.gradients(tf.reduce_sum(inner(x)), [x])
        return g

    check_grad(first_derivative, [M + 0.05])


# -- the engine ---------------------------------------------------------------------------------------------------
def test_unconnected_xs_get_none():
    x, y = tf.placeholder(tf.float32, [2]), tf.placeholder(tf.float32, [2])
    z = x * 2.0
    assert tf.gradients(z, [x, y])[1] is None
    assert tf.gradients(tf.stop_gradient(x) * 3.0, x) == [None]
    assert tf.gradients(tf.argmax(x) * 0, x) == [None]  # integer path: no gradient, no error


def test_gradient_through_an_op_without_a_gradient_names_it():
    x = tf.placeholder(tf.float32, [3])
    y = tf.cast(tf.equal(x, 1.0), tf.float32) * x
    with pytest.raises(LookupError, match=r"No gradient defined for operation 'picked' \(op type: Equal\)"):
        tf.gradients(tf.equal(x, 1.0, name="picked"), x)
    assert tf.gradients(y, x)[0] is not None  # the bool path carries no gradient, so it is not an error


def test_every_op_declares_its_gradient():
    undeclared = sorted(name for name, definition in REGISTRY.items() if definition.grad is None)
    assert undeclared == [], f"ops with no gradient declaration (use NOT_DIFFERENTIABLE or a rule): {undeclared}"


def test_variables_as_xs_include_every_read_and_grad_ys_weights_ys():
    w = tf.Variable([1.0, 2.0], name="w")
    with tf.control_dependencies([tf.no_op()]):
        second_read = w * 10.0  # a separate ReadVariable of w
    y = tf.reduce_sum(w * w) + tf.reduce_sum(second_read)
    (g,) = tf.gradients(y, w)
    (weighted,) = tf.gradients([w * 1.0], [w], grad_ys=[tf.constant([3.0, 4.0])])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_allclose(sess.run(g), [12.0, 14.0])
        np.testing.assert_allclose(sess.run(weighted), [3.0, 4.0])


def test_multiple_ys_and_repeated_use_sum_their_gradients():
    x = tf.placeholder(tf.float64, [])
    grads = tf.gradients([x * x, x * 3.0, x], [x])
    stopped = tf.gradients(x * x + x, x, stop_gradients=[x])
    with tf.Session() as sess:
        assert sess.run(grads[0], {x: 2.0}) == pytest.approx(8.0)
        assert sess.run(stopped[0], {x: 2.0}) == pytest.approx(5.0)


def test_gradient_ops_live_under_the_gradients_name_scope():
    x = tf.placeholder(tf.float32, [2], name="x")
    (g,) = tf.gradients(tf.reduce_sum(tf.exp(x, name="e")), x)
    assert g.name.startswith("gradients/e_grad/")


def test_a_100000_node_chain_differentiates_without_recursion():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [2])
        y = x
        for _ in range(100_000):
            y = tf.identity(y)
        (g,) = tf.gradients(tf.reduce_sum(y * y), x)
        with tf.Session(graph=graph) as sess:
            np.testing.assert_allclose(sess.run(g, {x: [1.0, -2.0]}), [2.0, -4.0])


def test_default_grad_ys_do_not_run_a_printed_loss_of_known_shape(capsys):
    """As TF1 (whose grappler folds the seed's shape(y) to a constant): the train op alone does not run
    a tf.Print wrapped around a loss of known shape; fetching the loss does. With an unknown shape the
    seed reads y's shape, so the Print runs (as in TF)."""
    w = tf.Variable([1.0, 2.0])
    loss = tf.Print(tf.reduce_sum(tf.square(w)), [w], "loss ran: ")
    train = tf.assign_sub(w, 0.25 * tf.gradients(loss, w)[0])
    x = tf.placeholder(tf.float32, [None])
    unknown = tf.Print(x * w[0], [x], "unknown ran: ")
    dx = tf.gradients(unknown, x)[0]
    with tf.Session() as sess:
        sess.run(w.initializer)
        sess.run(train)
        assert capsys.readouterr().err == ""
        np.testing.assert_allclose(sess.run(w), [0.5, 1.0])
        assert sess.run(loss) == 1.25
        np.testing.assert_allclose(sess.run(dx, {x: [3.0, 4.0]}), [0.5, 0.5])
    assert capsys.readouterr().err == "loss ran: [0.5 1]\nunknown ran: [3 4]\n"
