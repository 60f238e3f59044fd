"""Array ops against numpy: constants and placeholders, construction (zeros, fill, range...),
rearrangement (reshape, concat, split, gather, pad...), shape queries and Tensor indexing."""
import inspect

import numpy as np
import pytest

import graphexec as tf
from graphexec.ops.every_op import REGISTRY
from opcheck import check_op, sample

FLOATS = [tf.float16, tf.float32, tf.float64]
INTS = [tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8, tf.uint16]
ALL = FLOATS + INTS + [tf.bool]


def run(fetches, feed_dict=None):
    with tf.Session() as sess:
        return sess.run(fetches, feed_dict)


# -- constant, placeholder, placeholder_with_default --------------------------------------------------
@pytest.mark.parametrize("value,dtype", [(1.5, np.float32), (3, np.int32), (True, np.bool_), ([1, 2], np.int32),
                                         ([[1.0], [2.0]], np.float32), (2**40, np.int64), ([], np.float32),
                                         (np.float64(2.5), np.float64), (np.arange(4, dtype=np.uint8), np.uint8)],
                         ids=str)
def test_constant_infers_tf_dtypes(value, dtype):
    expected = np.asarray(value, dtype)
    check_op(lambda: tf.constant(value), lambda: expected, [])


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_constant_with_dtype_and_shape(dtype):
    check_op(lambda: tf.constant(1, dtype=dtype, shape=[2, 3]), lambda: np.ones((2, 3), dtype.np), [])
    check_op(lambda: tf.constant([0, 1, 1, 0], dtype=dtype, shape=[2, 2]),
             lambda: np.array([[0, 1], [1, 0]], dtype.np), [])


def test_constant_errors_and_copies():
    with pytest.raises(TypeError, match="shape"):
        tf.constant([1, 2, 3], shape=[2, 2])
    with pytest.raises(TypeError):
        tf.constant(1.5, dtype=tf.int32)
    with pytest.raises(TypeError):
        tf.constant(["text", 1])  # a string tensor holds only str/bytes
    source = np.ones(3, np.float32)
    c = tf.constant(source)
    source[0] = 7  # the graph keeps its own copy; the caller's array stays writable
    np.testing.assert_array_equal(run(c), [1, 1, 1])


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_placeholder_is_fed(dtype):
    check_op(tf.identity, lambda x: x, [sample((2, 3), dtype)])


def test_placeholder_static_shape_and_missing_feed():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    assert x.shape.as_list() == [None, 3] and x.dtype is tf.float32 and x.name == "x:0"
    assert tf.placeholder(tf.int32).shape.dims is None
    with pytest.raises(tf.errors.InvalidArgumentError, match="must feed a value for placeholder tensor 'x'"):
        run(x * 2)


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_placeholder_with_default(dtype):
    default, fed = sample((2, 3), dtype, seed=1), sample((4, 3), dtype, seed=2)
    x = tf.placeholder_with_default(default, shape=[None, 3])
    assert x.shape.as_list() == [None, 3]
    y = tf.identity(x)
    np.testing.assert_array_equal(run(y), default)
    np.testing.assert_array_equal(run(y, {x: fed}), fed)


def test_placeholder_with_default_rejects_a_mismatched_default():
    with pytest.raises(tf.errors.InvalidArgumentError, match="does not match"):
        tf.placeholder_with_default([1.0, 2.0], shape=[3])


# -- zeros, ones, zeros_like, ones_like, fill ---------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("shape", [[], [3], [2, 3], [2, 0, 4]], ids=str)
def test_zeros_and_ones(dtype, shape):
    check_op(lambda: tf.zeros(shape, dtype), lambda: np.zeros(shape, dtype.np), [])
    check_op(lambda: tf.ones(shape, dtype), lambda: np.ones(shape, dtype.np), [])


def test_zeros_and_ones_of_a_run_time_shape():
    dims = np.array([2, 3], np.int32)
    check_op(lambda s: tf.zeros(s), lambda s: np.zeros(s, np.float32), [dims])
    check_op(lambda s: tf.ones(s, tf.int64), lambda s: np.ones(s, np.int64), [dims.astype(np.int64)])
    check_op(lambda x: tf.zeros(tf.shape(x)), lambda x: np.zeros(x.shape, np.float32), [np.ones((4, 2))])
    x = tf.placeholder(tf.float32, [None, 3])
    assert tf.zeros([tf.shape(x)[0], 3]).shape.as_list() == [None, 3]  # packed at run time, partly known now
    assert tf.fill(tf.shape(x), 1.0).shape.as_list() == [None, 3]
    assert tf.broadcast_to(1.0, tf.shape(x)).shape.as_list() == [None, 3]
    np.testing.assert_array_equal(run(tf.ones([tf.shape(x)[0], 3]), {x: np.zeros((2, 3))}), np.ones((2, 3)))


def test_shape_arguments_accept_variables():
    dims, multiples = tf.Variable([2, 3]), tf.Variable([1, 2])
    axis, begin = tf.Variable(1), tf.Variable([0, 1])
    x = tf.constant(np.arange(6.0).reshape(2, 3))
    fetches = [tf.zeros(dims), tf.fill(dims, 2), tf.tile(x, multiples), tf.concat([x, x], axis),
               tf.slice(x, begin, [-1, 2]), tf.random_uniform(dims, seed=1), tf.one_hot([0], axis + 1)]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        zeros, filled, tiled, joined, sliced, uniform, hot = sess.run(fetches)
    assert zeros.shape == filled.shape == uniform.shape == (2, 3) and filled.dtype == np.int32
    np.testing.assert_array_equal(tiled, np.tile(np.arange(6.0).reshape(2, 3), [1, 2]))
    assert joined.shape == (2, 6) and sliced.tolist() == [[1, 2], [4, 5]] and hot.tolist() == [[1, 0]]


def test_zeros_names_follow_tf():
    assert tf.zeros([2]).op.name == "zeros" and tf.zeros([2]).op.name == "zeros_1"
    assert tf.ones([2], name="init").op.name == "init"


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_zeros_like_and_ones_like(dtype):
    x = sample((2, 3), dtype)
    check_op(tf.zeros_like, np.zeros_like, [x])
    check_op(tf.ones_like, np.ones_like, [x])


@pytest.mark.parametrize("dtype", [tf.int32, tf.float64, tf.bool], ids=str)
def test_zeros_like_and_ones_like_with_dtype(dtype):
    x = sample((2, 3), tf.float32)
    check_op(lambda t: tf.zeros_like(t, dtype=dtype), lambda v: np.zeros_like(v, dtype.np), [x])
    check_op(lambda t: tf.ones_like(t, dtype=dtype), lambda v: np.ones_like(v, dtype.np), [x])


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_fill(dtype):
    value = sample((), dtype, low=1, seed=3)
    check_op(lambda v: tf.fill([2, 3], v), lambda v: np.full((2, 3), v), [value])
    check_op(tf.fill, lambda d, v: np.full(d, v), [np.array([3, 1], np.int32), value])


def test_fill_errors():
    with pytest.raises(tf.errors.InvalidArgumentError, match="scalar"):
        tf.fill([2], [1.0, 2.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-negative"):
        tf.fill([2, -1], 1.0)


# -- range, linspace ---------------------------------------------------------------------------------
@pytest.mark.parametrize("args,expected", [
    ((5,), np.arange(5, dtype=np.int32)),
    ((2, 10, 3), np.arange(2, 10, 3, dtype=np.int32)),
    ((10, 2, -3), np.arange(10, 2, -3, dtype=np.int32)),
    ((5, 5), np.arange(5, 5, dtype=np.int32)),
    ((0.0, 1.0, 0.25), np.arange(0, 1, 0.25, dtype=np.float32)),
    ((1, 5.5), np.arange(1, 5.5, dtype=np.float32)),
    ((2**40, 2**40 + 3), np.arange(2**40, 2**40 + 3, dtype=np.int64)),
], ids=str)
def test_range_infers_dtype_like_tf(args, expected):
    check_op(lambda: tf.range(*args), lambda: expected, [])


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64, tf.float32, tf.float64], ids=str)
def test_range_with_dtype_and_tensor_bounds(dtype):
    check_op(lambda: tf.range(1, 7, 2, dtype=dtype), lambda: np.arange(1, 7, 2, dtype=dtype.np), [])
    bounds = [np.asarray(v, dtype.np) for v in (7, 1, -2)]
    check_op(tf.range, lambda a, b, c: np.arange(a, b, c, dtype=dtype.np), bounds)
    check_op(lambda limit: tf.range(limit), lambda limit: np.arange(limit, dtype=dtype.np), [bounds[0]])


def test_range_errors():
    with pytest.raises(tf.errors.InvalidArgumentError, match="start <= limit"):
        tf.range(5, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="delta != 0"):
        tf.range(0, 5, 0)
    start = tf.placeholder(tf.int32, [])
    with pytest.raises(tf.errors.InvalidArgumentError, match="delta != 0"):
        run(tf.range(start, 5, 0), {start: 0})


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=str)
@pytest.mark.parametrize("start,stop,num", [(0, 1, 5), (-2, 3, 1), (3, -1, 7)], ids=str)
def test_linspace(dtype, start, stop, num):
    expected = np.linspace(start, stop, num).astype(dtype.np)
    check_op(lambda: tf.linspace(tf.constant(start, dtype), tf.constant(stop, dtype), num), lambda: expected, [])
    check_op(tf.linspace, lambda a, b, n: expected,
             [np.asarray(start, dtype.np), np.asarray(stop, dtype.np), np.int32(num)])


def test_linspace_needs_a_positive_count():
    with pytest.raises(tf.errors.InvalidArgumentError, match="num > 0"):
        tf.linspace(0.0, 1.0, 0)


# -- reshape, transpose, expand_dims, squeeze ----------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("target", [[6, 4], [-1], [2, -1, 3], [4, 3, 2, 1], [-1, 24]], ids=str)
def test_reshape(dtype, target):
    check_op(lambda t: tf.reshape(t, target), lambda v: v.reshape(target), [sample((2, 3, 4), dtype)])


def test_reshape_to_a_run_time_shape_and_partial_inference():
    check_op(tf.reshape, lambda v, s: v.reshape(s), [sample((2, 6), tf.float32), np.array([3, -1], np.int32)])
    x = tf.placeholder(tf.float32, [None, 4])
    assert tf.reshape(x, [-1, 2]).shape.as_list() == [None, 2]
    assert tf.reshape(x, [2, 2, -1]).shape.as_list() == [2, 2, None]
    with pytest.raises(tf.errors.InvalidArgumentError, match="6 elements"):
        tf.reshape(tf.zeros([2, 3]), [4, 2])


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("perm", [None, [0, 1, 2], [2, 0, 1], [1, 0, 2]], ids=str)
def test_transpose(dtype, perm):
    check_op(lambda t: tf.transpose(t, perm), lambda v: np.transpose(v, perm), [sample((2, 3, 4), dtype)])


def test_transpose_rejects_a_bad_permutation():
    with pytest.raises(tf.errors.InvalidArgumentError, match="permutation"):
        tf.transpose(tf.zeros([2, 3]), [0, 0])


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3], ids=str)
def test_expand_dims(dtype, axis):
    check_op(lambda t: tf.expand_dims(t, axis), lambda v: np.expand_dims(v, axis), [sample((2, 3), dtype)])


def test_expand_dims_dim_spelling():
    check_op(lambda t: tf.expand_dims(t, dim=1), lambda v: v[:, None], [sample((2, 3), tf.float32)])


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("axis", [None, [0], [2], [-1], [0, 2]], ids=str)
def test_squeeze(dtype, axis):
    np_axis = None if axis is None else tuple(axis)
    check_op(lambda t: tf.squeeze(t, axis), lambda v: np.squeeze(v, np_axis), [sample((1, 3, 1), dtype)])


def test_squeeze_spellings_and_errors():
    check_op(lambda t: tf.squeeze(t, squeeze_dims=[0]), lambda v: v[0], [sample((1, 3), tf.float32)])
    check_op(lambda t: tf.squeeze(t, 1), lambda v: v[:, 0], [sample((3, 1), tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="squeeze dim"):
        tf.squeeze(tf.zeros([2, 3]), [0])


# -- concat, stack, unstack, split --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("axis", [0, 1, -1], ids=str)
def test_concat(dtype, axis):
    shapes = {0: [(1, 3), (2, 3), (3, 3)], 1: [(2, 1), (2, 3), (2, 2)], -1: [(2, 1), (2, 3), (2, 2)]}[axis]
    inputs = [sample(s, dtype, seed=i) for i, s in enumerate(shapes)]
    check_op(lambda *ts: tf.concat(list(ts), axis), lambda *vs: np.concatenate(vs, axis), inputs)
    check_op(lambda *ts: tf.concat(list(ts[:2]), axis), lambda *vs: np.concatenate(vs[:2], axis), inputs)


def test_concat_of_one_tensor_and_a_tensor_axis():
    check_op(lambda t: tf.concat([t], 0), lambda v: v, [sample((2, 3), tf.float32)])
    check_op(lambda a, b, axis: tf.concat([a, b], axis), lambda a, b, axis: np.concatenate([a, b], axis),
             [sample((2, 3), tf.float32), sample((2, 1), tf.float32), np.int32(1)])


def test_concat_shape_inference_and_errors():
    x = tf.placeholder(tf.float32, [None, 3])
    assert tf.concat([x, tf.zeros([2, 3])], 0).shape.as_list() == [None, 3]
    assert tf.concat([x, tf.zeros([2, 3])], 1).shape.as_list() == [2, 6]
    with pytest.raises(tf.errors.InvalidArgumentError, match="dimension 0 must match"):
        tf.concat([tf.zeros([2, 3]), tf.zeros([3, 3])], 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same rank"):
        tf.concat([tf.zeros([2, 3]), tf.zeros([3])], 0)


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("axis", [0, 1, 2, -1], ids=str)
def test_stack(dtype, axis):
    inputs = [sample((2, 3), dtype, seed=i) for i in range(3)]
    check_op(lambda *ts: tf.stack(list(ts), axis), lambda *vs: np.stack(vs, axis), inputs)


def test_stack_errors_and_packing_by_conversion():
    with pytest.raises(tf.errors.InvalidArgumentError, match="must match"):
        tf.stack([tf.zeros([2]), tf.zeros([3])])
    x = tf.placeholder(tf.float32, [])
    np.testing.assert_array_equal(run(tf.convert_to_tensor([x, 2.0, x]), {x: 1.0}), [1, 2, 1])


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("axis", [0, 1, -1], ids=str)
def test_unstack(dtype, axis):
    x = sample((2, 3, 4), dtype)
    check_op(lambda t: tf.unstack(t, axis=axis), lambda v: [np.take(v, i, axis) for i in range(v.shape[axis])], [x],
             modes=("const", "feed"))
    check_op(lambda t: tf.unstack(t, num=x.shape[axis], axis=axis),
             lambda v: [np.take(v, i, axis) for i in range(v.shape[axis])], [x], modes=("partial",))


def test_unstack_needs_a_known_count():
    with pytest.raises(ValueError, match="Cannot infer num"):
        tf.unstack(tf.placeholder(tf.float32, [None, 2]))


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("splits,axis", [(2, 0), (3, 1), (1, -1), ([1, 2], 1), ([2, -1, 1], 2), ([0, 4], 0)],
                         ids=str)
def test_split(dtype, splits, axis):
    x = sample((4, 3, 4), dtype)

    def np_split(v):
        if isinstance(splits, int):
            return np.split(v, splits, axis)
        sizes = [v.shape[axis] - sum(s for s in splits if s != -1) if s == -1 else s for s in splits]
        return np.split(v, np.cumsum(sizes)[:-1], axis)

    check_op(lambda t: tf.split(t, splits, axis), np_split, [x])


def test_split_errors():
    with pytest.raises(tf.errors.InvalidArgumentError, match="evenly divide"):
        tf.split(tf.zeros([4, 3]), 2, axis=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="add up"):
        tf.split(tf.zeros([4, 3]), [1, 1], axis=0)


# -- slice, gather ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("begin,size", [([0, 0], [2, 3]), ([1, 1], [1, 2]), ([1, 0], [-1, 2]), ([0, 2], [-1, -1]),
                                        ([2, 3], [0, 0])], ids=str)
def test_slice(dtype, begin, size):
    def np_slice(v):
        return v[tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size))]

    check_op(lambda t: tf.slice(t, begin, size), np_slice, [sample((2, 3), dtype)])
    check_op(tf.slice, lambda v, b, s: np_slice(v), [sample((2, 3), dtype), np.array(begin, np.int32),
                                                    np.array(size, np.int64)])


def test_slice_out_of_bounds_is_an_error():
    with pytest.raises(tf.errors.InvalidArgumentError, match="size"):
        tf.slice(tf.zeros([2, 3]), [1, 0], [2, 3])
    x = tf.placeholder(tf.float32, [None, 3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="Slice"):
        run(tf.slice(x, [1, 0], [2, 3]), {x: np.zeros((2, 3))})


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("axis", [None, 0, 1, -1], ids=str)
@pytest.mark.parametrize("index_shape", [(), (2,), (2, 2)], ids=str)
def test_gather(dtype, axis, index_shape):
    params = sample((3, 4), dtype)
    indices = sample(index_shape, tf.int32, low=0, high=2, seed=4)
    check_op(lambda p, i: tf.gather(p, i, axis=axis), lambda p, i: np.take(p, i, axis=axis or 0), [params, indices])


def test_gather_int64_indices_and_out_of_range():
    check_op(tf.gather, lambda p, i: p[i], [sample((5, 2), tf.float32), np.array([4, 0, 4], np.int64)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"not in \[0, 3\)"):
        run(tf.gather(tf.placeholder_with_default([1.0, 2.0, 3.0], [None]), [3]))


# -- tile, pad, broadcast_to --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("multiples", [[1, 1], [2, 1], [1, 3], [2, 2], [0, 2]], ids=str)
def test_tile(dtype, multiples):
    check_op(lambda t: tf.tile(t, multiples), lambda v: np.tile(v, multiples), [sample((2, 3), dtype)])
    check_op(tf.tile, lambda v, m: np.tile(v, m), [sample((2, 3), dtype), np.array(multiples, np.int32)])


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("mode", ["CONSTANT", "REFLECT", "SYMMETRIC", "reflect"])
def test_pad(dtype, mode):
    paddings = [[1, 2], [0, 2]]
    np_mode = mode.lower()
    check_op(lambda t: tf.pad(t, paddings, mode), lambda v: np.pad(v, paddings, mode=np_mode),
             [sample((3, 4), dtype)])


@pytest.mark.parametrize("dtype", FLOATS + INTS, ids=str)
def test_pad_constant_values_and_tensor_paddings(dtype):
    paddings = np.array([[0, 1], [2, 0]], np.int32)
    check_op(lambda t: tf.pad(t, paddings, constant_values=3), lambda v: np.pad(v, paddings, constant_values=3),
             [sample((2, 2), dtype)])
    check_op(tf.pad, lambda v, p: np.pad(v, p), [sample((2, 2), dtype), paddings])


def test_pad_errors():
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 2"):
        tf.pad(tf.zeros([3]), [[3, 0]], "REFLECT")
    with pytest.raises(tf.errors.InvalidArgumentError, match="one row per dimension"):
        tf.pad(tf.zeros([3]), [[1, 1], [1, 1]])
    with pytest.raises(ValueError, match="Unknown padding mode"):
        tf.pad(tf.zeros([3]), [[1, 1]], "WRAP")


@pytest.mark.parametrize("dtype", ALL, ids=str)
@pytest.mark.parametrize("source,target", [((3,), (2, 3)), ((2, 1), (2, 4)), ((), (2, 2)), ((1, 3), (4, 2, 3))],
                         ids=str)
def test_broadcast_to(dtype, source, target):
    check_op(lambda t: tf.broadcast_to(t, target), lambda v: np.broadcast_to(v, target), [sample(source, dtype)])


def test_broadcast_to_rejects_incompatible_shapes():
    with pytest.raises(tf.errors.InvalidArgumentError, match="cannot broadcast"):
        tf.broadcast_to(tf.zeros([3]), [2, 4])


# -- one_hot -------------------------------------------------------------------------------------------
def _np_one_hot(indices, depth, on=1.0, off=0.0, axis=-1, dtype=np.float32):
    hot = indices[..., None] == np.arange(depth)
    out = np.where(hot, on, off).astype(dtype)
    return out if axis == -1 else np.moveaxis(out, -1, axis)


@pytest.mark.parametrize("index_dtype", [tf.int32, tf.int64, tf.uint8], ids=str)
@pytest.mark.parametrize("axis", [-1, 0, 1], ids=str)
def test_one_hot(index_dtype, axis):
    indices = np.array([[0, 2, 5], [1, 1, 0]]).astype(index_dtype.np)  # 5 is out of range: an all-off row
    check_op(lambda i: tf.one_hot(i, 4, axis=axis), lambda i: _np_one_hot(i, 4, axis=axis), [indices])


@pytest.mark.parametrize("dtype", FLOATS + INTS + [tf.bool], ids=str)
def test_one_hot_values_and_dtype(dtype):
    indices = np.array([0, -1, 2], np.int32)
    on, off = np.asarray(1, dtype.np), np.asarray(0 if dtype is tf.bool else 2, dtype.np)
    check_op(lambda i: tf.one_hot(i, 3, on_value=on.item(), off_value=off.item(), dtype=dtype),
             lambda i: _np_one_hot(i, 3, on, off, dtype=dtype.np), [indices])


def test_one_hot_takes_its_dtype_from_the_values():
    assert tf.one_hot([1], 3).dtype is tf.float32
    assert tf.one_hot([1], 3, on_value=5, off_value=-1).dtype is tf.int32
    assert tf.one_hot([1], 3, on_value=tf.constant(1.0, tf.float64), off_value=0.0).dtype is tf.float64
    depth = tf.placeholder(tf.int32, [])
    hot = tf.one_hot([1, 0], depth)
    assert hot.shape.as_list() == [2, None]
    np.testing.assert_array_equal(run(hot, {depth: 3}), [[0, 1, 0], [1, 0, 0]])


# -- shape, size, rank, identity, stop_gradient -------------------------------------------------------
@pytest.mark.parametrize("shape", [(), (3,), (2, 0, 4)], ids=str)
@pytest.mark.parametrize("out_type", [tf.int32, tf.int64], ids=str)
def test_shape_size_rank(shape, out_type):
    x = sample(shape, tf.float32)
    check_op(lambda t: tf.shape(t, out_type=out_type), lambda v: np.array(v.shape, out_type.np), [x])
    check_op(lambda t: tf.size(t, out_type=out_type), lambda v: np.asarray(v.size, out_type.np), [x])
    check_op(tf.rank, lambda v: np.asarray(v.ndim, np.int32), [x])


def test_shape_of_a_partially_known_tensor_is_computed_at_run_time():
    x = tf.placeholder(tf.float32, [None, 3])
    shape = tf.shape(x)
    assert shape.shape.as_list() == [2] and shape._value is None
    np.testing.assert_array_equal(run(shape, {x: np.zeros((5, 3))}), [5, 3])
    assert tf.shape(tf.zeros([2, 4]))._value.tolist() == [2, 4]  # known shapes are known while building


@pytest.mark.parametrize("fn", [tf.identity, tf.stop_gradient], ids=["identity", "stop_gradient"])
@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_identity_and_stop_gradient(fn, dtype):
    check_op(fn, lambda v: v, [sample((2, 3), dtype)])


# -- Tensor.__getitem__ --------------------------------------------------------------------------------
INDEXES = {
    "int": 1, "negative int": -1, "slice": slice(1, 3), "step": slice(None, None, 2),
    "negative step": slice(None, None, -1),
    "negative bounds": slice(-3, -1), "stepped range": slice(3, 0, -2), "pair": (1, 2), "row slice": (slice(None), 1),
    "newaxis": (None, 0), "ellipsis": (Ellipsis, 1), "ellipsis newaxis": (1, Ellipsis, None),
    "mixed": (slice(1, None), None, -1, slice(None, None, -2)), "empty": slice(2, 2), "past end": slice(1, 100),
}


@pytest.mark.parametrize("name", list(INDEXES))
@pytest.mark.parametrize("dtype", [tf.float32, tf.int64, tf.bool], ids=str)
def test_getitem(name, dtype):
    key = INDEXES[name]
    check_op(lambda t: t[key], lambda v: v[key], [sample((4, 3, 5), dtype)])


def test_getitem_with_tf_newaxis_and_errors():
    assert tf.newaxis is None
    check_op(lambda t: t[:, tf.newaxis], lambda v: v[:, None], [sample((3, 2), tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="out of bounds"):
        tf.zeros([3])[5]
    with pytest.raises(TypeError, match="valid indices"):
        tf.zeros([3])["a"]
    x = tf.zeros([2, 3])
    assert [t.shape.as_list() for t in x] == [[3], [3]]  # iterating a known first dimension



# -- the op schema of the array and nn families ------------------------------------------------------------
FAMILIES = ("array_ops", "slicing_ops", "joining_ops", "indexing_ops", "scan_ops", "nn_ops", "conv_ops", "pool_ops")


def test_every_family_op_declares_its_inputs_and_the_attrs_its_kernel_takes():
    ops = {name: d for name, d in REGISTRY.items() if d.kernel.__module__.rsplit(".", 1)[-1] in FAMILIES}
    assert {"Cumsum", "TopKV2", "GatherNd", "StridedSliceGrad", "MirrorPadGrad", "UnsortedSegmentSum"} <= set(ops)
    for name, definition in ops.items():
        assert definition.inputs is not None, f"{name} declares no inputs"
        parameters = list(inspect.signature(definition.kernel).parameters.values())[1:]  # after ctx
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            continue  # takes whatever attrs there are (StridedSlice's index spec)
        if any(p.kind is p.VAR_POSITIONAL for p in parameters):
            taken = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY}
        else:
            taken = {p.name for p in parameters[len(definition.inputs):]}
        assert taken - {"node"} == set(definition.attrs), f"{name}: declares {sorted(definition.attrs)}, kernel " \
                                                          f"takes {sorted(taken)}"
