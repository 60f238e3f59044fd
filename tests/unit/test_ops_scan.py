"""tf.cumsum and tf.cumprod against numpy (inclusive/exclusive, forwards/reverse, every axis), and their
gradients against finite differences."""
import numpy as np
import pytest

import graphexec as tf
from opcheck import check_grad, check_op, sample

NUMERIC = [tf.float16, tf.float32, tf.float64, tf.int8, tf.int32, tf.int64, tf.uint8]


def np_scan(accumulate, identity, x, axis, exclusive, reverse):
    """The reference: numpy's cumsum/cumprod with TF's exclusive and reverse, in x's dtype."""
    axis %= x.ndim
    if reverse:
        x = np.flip(x, axis)
    out = accumulate(x, axis=axis, dtype=x.dtype)
    if exclusive:
        shifted = np.full_like(out, identity)
        index = [slice(None)] * x.ndim
        index[axis] = slice(1, None)
        rest = [slice(None)] * x.ndim
        rest[axis] = slice(0, -1)
        shifted[tuple(index)] = out[tuple(rest)]
        out = shifted
    return np.flip(out, axis) if reverse else out


SCANS = {"cumsum": (tf.cumsum, np.cumsum, 0), "cumprod": (tf.cumprod, np.cumprod, 1)}
FLAGS = [(False, False), (True, False), (False, True), (True, True)]


@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
@pytest.mark.parametrize("exclusive,reverse", FLAGS, ids=["inclusive", "exclusive", "reverse", "exclusive_reverse"])
def test_scans_match_numpy(scan, dtype, exclusive, reverse):
    tf_fn, np_fn, identity = SCANS[scan]
    x = sample((2, 3, 4), dtype, low=-2, high=2)
    for axis in (0, 1, 2, -1, -3):
        check_op(lambda t: tf_fn(t, axis=axis, exclusive=exclusive, reverse=reverse),
                 lambda v: np_scan(np_fn, identity, v, axis, exclusive, reverse), [x])


@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("shape,axis", [((5,), 0), ((0, 3), 0), ((3, 0), 1), ((1,), -1)], ids=str)
def test_scans_of_vectors_and_empty_axes(scan, shape, axis):
    tf_fn, np_fn, identity = SCANS[scan]
    x = sample(shape, tf.float32)
    for exclusive, reverse in FLAGS:
        check_op(lambda t: tf_fn(t, axis, exclusive=exclusive, reverse=reverse),
                 lambda v: np_scan(np_fn, identity, v, axis, exclusive, reverse), [x])


def test_cumsum_axis_can_be_a_tensor_and_defaults_to_0():
    x = sample((3, 4), tf.int32)
    check_op(lambda t, a: tf.cumsum(t, a), lambda v, a: np.cumsum(v, axis=int(a), dtype=v.dtype),
             [x, np.int32(1)], static_shape=False)
    check_op(tf.cumsum, lambda v: np.cumsum(v, axis=0, dtype=v.dtype), [x])


def test_scan_errors():
    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        tf.cumsum(tf.zeros([2, 3]), axis=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least a vector"):
        tf.cumsum(tf.constant(1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="not supported"):
        tf.cumsum(tf.constant([True, False]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="int32 or int64"):
        tf.cumsum(tf.zeros([2]), axis=tf.constant(0.0))


@pytest.mark.parametrize("exclusive,reverse", FLAGS, ids=["inclusive", "exclusive", "reverse", "exclusive_reverse"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum_gradient(exclusive, reverse, axis):
    x = np.random.default_rng(0).standard_normal((3, 4))
    check_grad(lambda t: tf.cumsum(t, axis, exclusive=exclusive, reverse=reverse), [x])


@pytest.mark.parametrize("exclusive,reverse", FLAGS, ids=["inclusive", "exclusive", "reverse", "exclusive_reverse"])
def test_cumprod_gradient_away_from_zero(exclusive, reverse):
    x = np.random.default_rng(1).uniform(0.5, 1.5, (3, 4)) * np.sign(np.random.default_rng(2).standard_normal((3, 4)))
    check_grad(lambda t: tf.cumprod(t, 1, exclusive=exclusive, reverse=reverse), [x])


def test_second_derivative_of_cumsum_through_a_square():
    def first_derivative(x):
        (g,) = tf.gradients(tf.reduce_sum(tf.square(tf.cumsum(x, 1, reverse=True))), [x])
        return g

    check_grad(first_derivative, [np.random.default_rng(3).standard_normal((2, 3))])
