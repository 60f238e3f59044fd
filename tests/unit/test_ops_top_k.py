"""tf.nn.top_k against numpy: values and int32 indices of the k largest along the last axis, largest
first, equal values in index order (as TF); k from 0 to the last dim, as a Python int or a tensor; the
gradient against finite differences."""
import numpy as np
import pytest

import graphexec as tf
from opcheck import check_grad, check_op, sample

NUMERIC = [tf.float16, tf.float32, tf.float64, tf.int8, tf.int32, tf.int64, tf.uint8]


def np_top_k(x, k):
    """Reference: each row ordered by (value descending, index ascending)."""
    rows = x.reshape(-1, x.shape[-1])
    order = np.stack([np.lexsort((np.arange(len(r)), -r.astype(np.float64))) for r in rows]) if rows.size \
        else np.zeros(rows.shape, np.int64)
    order = order[:, :k].reshape(x.shape[:-1] + (k,)).astype(np.int32)
    return np.take_along_axis(x, order, axis=-1), order


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
@pytest.mark.parametrize("shape", [(5,), (3, 6), (2, 3, 4)], ids=str)
def test_top_k_matches_numpy_for_every_k(dtype, shape):
    x = sample(shape, dtype, low=-2, high=2)  # a small grid of values: many ties
    for k in range(shape[-1] + 1):
        check_op(lambda t: tf.nn.top_k(t, k=k), lambda v: np_top_k(v, k), [x])


def test_ties_keep_index_order_and_k_may_be_the_whole_row():
    values, indices = tf.nn.top_k([1.0, 3.0, 3.0, 2.0, 3.0], k=5)
    with tf.Session() as sess:
        got_values, got_indices = sess.run([values, indices])
    np.testing.assert_array_equal(got_values, [3, 3, 3, 2, 1])
    np.testing.assert_array_equal(got_indices, [1, 2, 4, 3, 0])
    assert got_indices.dtype == np.int32


def test_top_k_default_k_named_outputs_and_unsorted_flag():
    x = np.array([[0.5, 2.0, -1.0], [4.0, 4.0, 1.0]], np.float32)
    result = tf.nn.top_k(x)
    assert result.values.shape.as_list() == [2, 1] and result.indices.dtype is tf.int32
    assert result.values.op.type == "TopKV2" and result.values.op.attrs["sorted"] is True
    check_op(lambda t: tf.nn.top_k(t, 2, sorted=False), lambda v: np_top_k(v, 2), [x])
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(result.indices), [[1], [0]])


def test_k_as_a_tensor():
    x = sample((3, 5), tf.float32)
    check_op(lambda t, k: tf.nn.top_k(t, k), lambda v, k: np_top_k(v, int(k)), [x, np.int32(3)], static_shape=False)
    k = tf.placeholder(tf.int32, [])
    assert tf.nn.top_k(tf.zeros([3, 5]), k).values.shape.as_list() == [3, None]


def test_top_k_errors():
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least k=4 columns"):
        tf.nn.top_k(tf.zeros([2, 3]), 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-negative"):
        tf.nn.top_k(tf.zeros([2, 3]), -1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one dimension"):
        tf.nn.top_k(tf.constant(1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="not supported"):
        tf.nn.top_k(tf.constant([True, False]))
    k = tf.placeholder(tf.int32, [])
    picked = tf.nn.top_k(tf.zeros([2, 3]), k)
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError, match="at least k=5 columns"):
        sess.run(picked, {k: 5})


@pytest.mark.parametrize("shape,k", [((6,), 2), ((3, 5), 3), ((2, 3, 4), 4), ((2, 3), 0)], ids=str)
def test_top_k_gradient_goes_to_the_chosen_entries(shape, k):
    x = np.random.default_rng(0).standard_normal(shape)  # distinct values: no ties for finite differences
    check_grad(lambda t: tf.nn.top_k(t, k).values, [x])


def test_top_k_gradient_with_k_as_a_tensor_and_through_indices_only():
    x = np.random.default_rng(1).standard_normal((3, 4))
    check_grad(lambda t, k: tf.nn.top_k(t, k).values, [x, np.int32(2)])
    t = tf.placeholder(tf.float64, [3, 4])
    assert tf.gradients(tf.cast(tf.nn.top_k(t, 2).indices, tf.float64), t) == [None]
