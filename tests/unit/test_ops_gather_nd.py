"""tf.gather_nd and its adjoint tf.scatter_nd against numpy: element and slice gathers, batch-prefix index
shapes, full and empty coordinate vectors, repeated coordinates; gradients against finite differences."""
import numpy as np
import pytest

import graphexec as tf
from opcheck import check_grad, check_op, sample

DTYPES = [tf.float16, tf.float32, tf.float64, tf.int8, tf.int32, tf.int64, tf.uint8, tf.bool]
PARAMS_SHAPE = (4, 3, 2)


def np_gather_nd(params, indices):
    batch, depth = indices.shape[:-1], indices.shape[-1]
    if depth == 0:
        return np.broadcast_to(params, batch + params.shape).copy()
    return params[tuple(np.moveaxis(indices, -1, 0))]


def np_scatter_nd(indices, updates, shape):
    out = np.zeros(shape, updates.dtype)
    depth = indices.shape[-1]
    count = int(np.prod(indices.shape[:-1]))
    rows = updates.reshape((count,) + tuple(shape[depth:]))
    if depth == 0:  # every update adds to the whole output
        return out + rows.sum(axis=0)
    np.add.at(out, tuple(indices.reshape(count, depth).T), rows)
    return out


def coordinates(batch, depth, seed=0, shape=PARAMS_SHAPE):
    """Random in-range coordinate vectors of the first `depth` dims of `shape`, batched as `batch`."""
    rng = np.random.default_rng(seed)
    columns = [rng.integers(0, shape[d], size=batch) for d in range(depth)]
    return np.stack(columns, axis=-1).astype(np.int32) if columns else np.zeros(batch + (0,), np.int32)


INDEX_CASES = {"rows": ((5,), 1), "pairs": ((5,), 2), "full_index": ((5,), 3), "batch_prefix": ((2, 3), 2),
               "batch_prefix_full": ((2, 2, 2), 3), "scalar_batch": ((), 2), "no_coordinates": ((2,), 0),
               "empty_batch": ((0,), 2)}


@pytest.mark.parametrize("case", INDEX_CASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gather_nd_matches_numpy(case, dtype):
    batch, depth = INDEX_CASES[case]
    params = sample(PARAMS_SHAPE, dtype)
    check_op(tf.gather_nd, np_gather_nd, [params, coordinates(batch, depth)])


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_gather_nd_of_a_matrix_with_either_index_type(index_dtype):
    params = np.arange(12.0).reshape(3, 4)
    indices = np.array([[0, 0], [2, 3], [1, 2], [2, 3]], index_dtype)
    check_op(tf.gather_nd, np_gather_nd, [params, indices])
    assert tf.gather_nd(params, indices).shape.as_list() == [4]
    assert tf.gather_nd(params, indices[:, :1]).shape.as_list() == [4, 4]


def test_gather_nd_static_shape_with_unknown_dims():
    params = tf.placeholder(tf.float32, [None, 3, 2])
    assert tf.gather_nd(params, tf.placeholder(tf.int32, [None, 2])).shape.as_list() == [None, 2]
    assert tf.gather_nd(params, tf.placeholder(tf.int32, [7, 3])).shape.as_list() == [7]
    assert tf.gather_nd(params, tf.placeholder(tf.int32, [7, None])).shape.dims is None


def test_gather_nd_errors():
    with pytest.raises(tf.errors.InvalidArgumentError, match="params only has 2"):
        tf.gather_nd(tf.zeros([2, 3]), [[0, 0, 0]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least a vector"):
        tf.gather_nd(tf.zeros([2, 3]), 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="int32 or int64"):
        tf.gather_nd(tf.zeros([2, 3]), [[0.0, 1.0]])
    indices = tf.placeholder(tf.int32, [None, 2])
    picked = tf.gather_nd(tf.zeros([2, 3]), indices)
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[1\] = \[1, 3\] does not index into param"):
            sess.run(picked, {indices: [[0, 0], [1, 3]]})
        with pytest.raises(tf.errors.InvalidArgumentError, match="does not index"):
            sess.run(picked, {indices: [[-1, 0]]})


@pytest.mark.parametrize("case", ["rows", "pairs", "full_index", "batch_prefix", "no_coordinates"])
def test_scatter_nd_adds_up_repeated_coordinates(case):
    batch, depth = INDEX_CASES[case]
    indices = coordinates(batch, depth, seed=4)
    updates = sample(batch + PARAMS_SHAPE[depth:], tf.float32, seed=5)
    check_op(lambda i, u: tf.scatter_nd(i, u, PARAMS_SHAPE), lambda i, u: np_scatter_nd(i, u, PARAMS_SHAPE),
             [indices, updates])


def test_scatter_nd_rejects_mismatched_updates():
    with pytest.raises(tf.errors.InvalidArgumentError, match="updates must have shape"):
        tf.scatter_nd([[0], [1]], tf.zeros([2, 5]), [4, 3])


@pytest.mark.parametrize("case", ["rows", "pairs", "full_index", "batch_prefix", "no_coordinates"])
def test_gather_nd_gradient_scatters_back(case):
    batch, depth = INDEX_CASES[case]
    params = np.random.default_rng(6).standard_normal(PARAMS_SHAPE)
    check_grad(tf.gather_nd, [params, coordinates(batch, depth, seed=7)])


def test_scatter_nd_gradient_gathers():
    indices = np.array([[1, 0], [3, 2], [1, 0]], np.int32)
    updates = np.random.default_rng(8).standard_normal((3, 2))
    check_grad(lambda i, u: tf.scatter_nd(i, u, PARAMS_SHAPE), [indices, updates])


def test_second_derivative_through_gather_nd():
    indices = np.array([[0, 1], [2, 2], [0, 1]], np.int32)

    def first_derivative(x, i):
        (g,) = tf.gradients(tf.reduce_sum(tf.square(tf.gather_nd(x, i))), [x])
        return g

    check_grad(first_derivative, [np.random.default_rng(9).standard_normal((3, 3)), indices])
