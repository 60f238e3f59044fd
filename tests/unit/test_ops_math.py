"""Math ops against numpy: elementwise (all supported dtypes, broadcast shapes), matmul, casts,
reductions, arg reductions, clipping, add_n, where, and the Tensor operators."""
import numpy as np
import pytest

import graphexec as tf
from opcheck import check_op, sample

FLOATS = [tf.float16, tf.float32, tf.float64]
INTS = [tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8, tf.uint16]
SIGNED = FLOATS + [tf.int8, tf.int16, tf.int32, tf.int64]
NUMERIC = FLOATS + INTS
BROADCASTS = [((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 4)), ((), (2, 3)), ((4, 1, 3), (2, 1)), ((0, 3), (1, 3))]


def _binary_inputs(shape_x, shape_y, dtype, divisor=False):
    return [sample(shape_x, dtype, seed=1), sample(shape_y, dtype, seed=2, nonzero=divisor)]


# (tf function, numpy function, dtypes, needs a non-zero right operand)
BINARY = {
    "add": (tf.add, np.add, NUMERIC, False),
    "subtract": (tf.subtract, np.subtract, NUMERIC, False),
    "multiply": (tf.multiply, np.multiply, NUMERIC, False),
    "floordiv": (tf.floordiv, np.floor_divide, NUMERIC, True),
    "mod": (tf.mod, np.mod, NUMERIC, True),
    "maximum": (tf.maximum, np.maximum, NUMERIC, False),
    "minimum": (tf.minimum, np.minimum, NUMERIC, False),
    "equal": (tf.equal, np.equal, NUMERIC + [tf.bool], False),
    "not_equal": (tf.not_equal, np.not_equal, NUMERIC + [tf.bool], False),
    "less": (tf.less, np.less, NUMERIC, False),
    "less_equal": (tf.less_equal, np.less_equal, NUMERIC, False),
    "greater": (tf.greater, np.greater, NUMERIC, False),
    "greater_equal": (tf.greater_equal, np.greater_equal, NUMERIC, False),
    "logical_and": (tf.logical_and, np.logical_and, [tf.bool], False),
    "logical_or": (tf.logical_or, np.logical_or, [tf.bool], False),
    "squared_difference": (tf.squared_difference, lambda x, y: np.square(x - y), SIGNED, False),
}
BINARY_BY_DTYPE = [(name, d) for name, (_, _, supported, _) in BINARY.items() for d in supported]


@pytest.mark.parametrize("name,dtype", BINARY_BY_DTYPE, ids=lambda v: getattr(v, "name", v))
def test_binary_dtypes(name, dtype):
    tf_fn, np_fn, _, divisor = BINARY[name]
    check_op(tf_fn, np_fn, _binary_inputs((2, 3), (3,), dtype, divisor))


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("shape_x,shape_y", BROADCASTS, ids=str)
def test_binary_broadcasts(name, shape_x, shape_y):
    tf_fn, np_fn, supported, divisor = BINARY[name]
    dtype = tf.float32 if tf.float32 in supported else supported[0]
    check_op(tf_fn, np_fn, _binary_inputs(shape_x, shape_y, dtype, divisor))
    check_op(tf_fn, np_fn, _binary_inputs(shape_y, shape_x, dtype, divisor))


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
def test_pow(dtype):
    base = sample((2, 3), dtype, low=-2, high=3, seed=1)
    exponent = sample((3,), dtype, low=0, high=3, seed=2)  # integers to negative powers are undefined
    check_op(tf.pow, np.power, [base, exponent])


def _true_divide_to(target):
    return lambda x, y: (x.astype(target) / y.astype(target))


@pytest.mark.parametrize("fn", [tf.divide, tf.truediv], ids=["divide", "truediv"])
@pytest.mark.parametrize("dtype,result", [(tf.float16, np.float16), (tf.float32, np.float32), (tf.float64, np.float64),
                                          (tf.int8, np.float32), (tf.int16, np.float32), (tf.uint8, np.float32),
                                          (tf.uint16, np.float32), (tf.int32, np.float64), (tf.int64, np.float64)],
                         ids=str)
def test_true_division_casts_integers_like_tf(fn, dtype, result):
    check_op(fn, _true_divide_to(result), _binary_inputs((2, 3), (3,), dtype, divisor=True))


@pytest.mark.parametrize("shape_x,shape_y", BROADCASTS, ids=str)
def test_divide_broadcasts(shape_x, shape_y):
    check_op(tf.divide, np.true_divide, _binary_inputs(shape_x, shape_y, tf.float64, divisor=True))


def test_binary_rejects_mixed_and_unsupported_dtypes():
    with pytest.raises(tf.errors.InvalidArgumentError, match="Add"):
        tf.add(tf.constant([1.0]), tf.constant([1], tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="LogicalAnd"):
        tf.logical_and(tf.constant([1.0]), tf.constant([2.0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="incompatible for broadcasting"):
        tf.add(tf.zeros([2, 3]), tf.zeros([4]))


# -- unary -----------------------------------------------------------------------------------------
def _sigmoid(x):
    return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


# (tf function, numpy function, dtypes, lowest input)
UNARY = {
    "negative": (tf.negative, np.negative, SIGNED, -3),
    "abs": (tf.abs, np.abs, SIGNED, -3),
    "sign": (tf.sign, np.sign, SIGNED, -3),
    "square": (tf.square, np.square, NUMERIC, -3),
    "sqrt": (tf.sqrt, np.sqrt, FLOATS, 0.25),
    "rsqrt": (tf.rsqrt, lambda x: (1 / np.sqrt(x)).astype(x.dtype), FLOATS, 0.25),
    "exp": (tf.exp, np.exp, FLOATS, -3),
    "log": (tf.log, np.log, FLOATS, 0.25),
    "log1p": (tf.log1p, np.log1p, FLOATS, -0.75),
    "sin": (tf.sin, np.sin, FLOATS, -3),
    "cos": (tf.cos, np.cos, FLOATS, -3),
    "tanh": (tf.tanh, np.tanh, FLOATS, -3),
    "sigmoid": (tf.sigmoid, _sigmoid, FLOATS, -3),
    "logical_not": (tf.logical_not, np.logical_not, [tf.bool], -3),
    "round": (tf.round, np.round, NUMERIC, -3),
    "floor": (tf.floor, np.floor, FLOATS, -3),
    "ceil": (tf.math.ceil, np.ceil, FLOATS, -3),
}
UNARY_BY_DTYPE = [(name, d) for name, (_, _, supported, _) in UNARY.items() for d in supported]


@pytest.mark.parametrize("name,dtype", UNARY_BY_DTYPE, ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)], ids=str)
def test_unary(name, dtype, shape):
    tf_fn, np_fn, _, low = UNARY[name]
    check_op(tf_fn, np_fn, [sample(shape, dtype, low=low, seed=3)])


@pytest.mark.parametrize("fn,dtype", [(tf.sqrt, tf.int32), (tf.exp, tf.int64), (tf.negative, tf.uint8),
                                      (tf.sigmoid, tf.int32), (tf.logical_not, tf.float32)], ids=str)
def test_unary_rejects_unsupported_dtypes(fn, dtype):
    with pytest.raises(tf.errors.InvalidArgumentError, match=dtype.name):
        fn(tf.constant([1], dtype))


def test_sigmoid_saturates_without_overflow():
    x = np.array([-1000, -50, 0, 50, 1000], np.float32)
    check_op(tf.sigmoid, _sigmoid, [x])


# -- matmul ----------------------------------------------------------------------------------------
def _np_matmul(transpose_a, transpose_b):
    def fn(a, b):
        a = np.swapaxes(a, -1, -2) if transpose_a else a
        b = np.swapaxes(b, -1, -2) if transpose_b else b
        return np.matmul(a, b)

    return fn


@pytest.mark.parametrize("dtype", [tf.float16, tf.float32, tf.float64, tf.int32, tf.int64], ids=str)
@pytest.mark.parametrize("transpose_a,transpose_b", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul(dtype, transpose_a, transpose_b):
    a = sample((3, 2) if transpose_a else (2, 3), dtype, seed=1)
    b = sample((4, 3) if transpose_b else (3, 4), dtype, seed=2)
    check_op(lambda x, y: tf.matmul(x, y, transpose_a=transpose_a, transpose_b=transpose_b),
             _np_matmul(transpose_a, transpose_b), [a, b])


@pytest.mark.parametrize("shape_a,shape_b", [((5, 2, 3), (5, 3, 4)), ((5, 2, 3), (3, 4)), ((2, 1, 2, 3), (3, 3, 2)),
                                             ((1, 2, 3), (4, 3, 2))], ids=str)
def test_batched_matmul(shape_a, shape_b):
    check_op(tf.matmul, np.matmul, [sample(shape_a, tf.float64, seed=1), sample(shape_b, tf.float64, seed=2)])


def test_batched_matmul_with_transposes():
    a, b = sample((2, 3, 5), tf.float32, seed=1), sample((2, 4, 3), tf.float32, seed=2)
    check_op(lambda x, y: tf.matmul(x, y, transpose_a=True, transpose_b=True), _np_matmul(True, True), [a, b])


def test_matmul_shape_errors_name_both_shapes():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[2,3\].*\[4,5\]"):
        tf.matmul(tf.zeros([2, 3]), tf.zeros([4, 5]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="rank 2"):
        tf.matmul(tf.zeros([3]), tf.zeros([3, 4]))


# -- cast ------------------------------------------------------------------------------------------
CASTS = [(a, b) for a in NUMERIC + [tf.bool] for b in NUMERIC + [tf.bool] if a is not b]


@pytest.mark.parametrize("source,target", CASTS, ids=str)
def test_cast(source, target):
    low = 0 if target.np.kind == "u" else -3  # negative floats to unsigned ints are undefined behaviour
    x = sample((2, 3), source, low=low, seed=4) + np.asarray(0.5 if source.is_floating else 0, source.np)
    check_op(lambda t: tf.cast(t, target), lambda v: v.astype(target.np), [x])


def test_cast_to_same_dtype_is_the_input_and_to_float():
    x = tf.constant([1, 2])
    assert tf.cast(x, tf.int32) is x
    check_op(tf.to_float, lambda v: v.astype(np.float32), [np.array([1, -2], np.int64)])


# -- reductions ------------------------------------------------------------------------------------
def _np_reduce(fn):
    return lambda axis, keep: (lambda x: np.asarray(fn(x, axis=axis, keepdims=keep)).astype(x.dtype))


def _np_int_mean(x, axis=None, keepdims=False):
    if x.dtype.kind in "iu":  # TF's integer mean truncates toward zero
        return np.trunc(np.mean(x, axis=axis, keepdims=keepdims))
    return np.mean(x, axis=axis, keepdims=keepdims)


REDUCTIONS = {
    "reduce_sum": (tf.reduce_sum, np.sum, NUMERIC),
    "reduce_mean": (tf.reduce_mean, _np_int_mean, NUMERIC),
    "reduce_max": (tf.reduce_max, np.max, NUMERIC),
    "reduce_min": (tf.reduce_min, np.min, NUMERIC),
    "reduce_prod": (tf.reduce_prod, np.prod, NUMERIC),
    "reduce_any": (tf.reduce_any, np.any, [tf.bool]),
    "reduce_all": (tf.reduce_all, np.all, [tf.bool]),
}
AXES = [None, 0, 1, -1, (0, 2), [-1, 0], ()]


@pytest.mark.parametrize("name,dtype", [(n, d) for n, (_, _, ds) in REDUCTIONS.items() for d in ds],
                         ids=lambda v: getattr(v, "name", v))
def test_reduction_dtypes(name, dtype):
    tf_fn, np_fn, _ = REDUCTIONS[name]
    x = sample((2, 3, 2), dtype, low=-2, high=2, seed=5)
    check_op(lambda t: tf_fn(t, axis=1), _np_reduce(np_fn)(1, False), [x])


@pytest.mark.parametrize("name", list(REDUCTIONS))
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_axes(name, axis, keepdims):
    tf_fn, np_fn, supported = REDUCTIONS[name]
    dtype = tf.float64 if tf.float64 in supported else tf.bool
    x = sample((2, 3, 4), dtype, seed=6)
    np_axis = tuple(axis) if isinstance(axis, list) else axis
    check_op(lambda t: tf_fn(t, axis=axis, keepdims=keepdims), _np_reduce(np_fn)(np_axis, keepdims), [x])


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reduction_old_spellings(name):
    tf_fn, np_fn, supported = REDUCTIONS[name]
    x = sample((2, 3), tf.float32 if tf.float32 in supported else tf.bool, seed=7)
    check_op(lambda t: tf_fn(t, reduction_indices=[1], keep_dims=True), _np_reduce(np_fn)(1, True), [x])


def test_reduction_axis_out_of_range_is_an_error():
    with pytest.raises(tf.errors.InvalidArgumentError, match="axis 2 is out of range"):
        tf.reduce_sum(tf.zeros([2, 3]), axis=2)


@pytest.mark.parametrize("fn,np_fn", [(tf.argmax, np.argmax), (tf.argmin, np.argmin)], ids=["argmax", "argmin"])
@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_arg_reductions(fn, np_fn, dtype, axis):
    x = sample((3, 4), dtype, seed=8)
    check_op(lambda t: fn(t, axis=axis), lambda v: np_fn(v, axis=axis).astype(np.int64), [x])


@pytest.mark.parametrize("fn,np_fn", [(tf.argmax, np.argmax), (tf.argmin, np.argmin)], ids=["argmax", "argmin"])
def test_arg_reductions_output_type_and_dimension(fn, np_fn):
    x = sample((3, 4), tf.float32, seed=9)
    check_op(lambda t: fn(t, dimension=1, output_type=tf.int32), lambda v: np_fn(v, axis=1).astype(np.int32), [x])
    check_op(lambda t: fn(t), lambda v: np_fn(v, axis=0).astype(np.int64), [x])


# -- clip_by_value, add_n, where -------------------------------------------------------------------
@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
def test_clip_by_value(dtype):
    x = sample((3, 4), dtype, seed=10)
    check_op(lambda t: tf.clip_by_value(t, 1, 2), lambda v: np.clip(v, 1, 2).astype(v.dtype), [x])


def test_clip_by_value_with_tensor_bounds_broadcasts():
    x, low, high = sample((3, 4), tf.float32, seed=11), np.array([-1, 0, 1, 2], np.float32), np.float32(2.5)
    check_op(tf.clip_by_value, lambda v, lo, hi: np.minimum(np.maximum(v, lo), hi), [x, low, high])


@pytest.mark.parametrize("count", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype", [tf.float16, tf.float32, tf.float64, tf.int32, tf.int64, tf.uint8], ids=str)
def test_add_n(count, dtype):
    inputs = [sample((2, 3), dtype, seed=i) for i in range(count)]
    check_op(lambda *ts: tf.add_n(list(ts)), lambda *vs: sum(vs[1:], vs[0]).astype(vs[0].dtype), inputs)


def test_add_n_requires_equal_shapes():
    with pytest.raises(tf.errors.InvalidArgumentError, match="same shape"):
        tf.add_n([tf.zeros([2, 3]), tf.zeros([3])])


@pytest.mark.parametrize("dtype", NUMERIC + [tf.bool], ids=str)
def test_where_selects(dtype):
    cond = sample((2, 3), tf.bool, seed=12)
    check_op(tf.where, np.where, [cond, sample((2, 3), dtype, seed=13), sample((2, 3), dtype, seed=14)])


@pytest.mark.parametrize("shapes", [((2, 3), (3,), (2, 3)), ((2, 1), (2, 3), (1, 3)), ((), (2,), (2,))], ids=str)
def test_where_broadcasts(shapes):
    c, x, y = shapes
    check_op(tf.where, np.where, [sample(c, tf.bool, seed=15), sample(x, tf.float32, seed=16),
                                  sample(y, tf.float32, seed=17)])


@pytest.mark.parametrize("dtype", [tf.bool, tf.float32, tf.int32], ids=str)
@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 3, 2)], ids=str)
def test_where_with_one_argument_gives_coordinates(dtype, shape):
    check_op(tf.where, np.argwhere, [sample(shape, dtype, low=-1, high=1, seed=18)], static_shape=False)


def test_where_rejects_a_non_bool_condition_and_one_of_x_y():
    with pytest.raises(ValueError, match="bool"):
        tf.where(tf.constant([1.0]), tf.constant([1.0]), tf.constant([2.0]))
    with pytest.raises(ValueError, match="both"):
        tf.where(tf.constant([True]), tf.constant([1.0]))


# -- Tensor operators ------------------------------------------------------------------------------
OPERATORS = {
    "+": (lambda x, y: x + y, NUMERIC), "-": (lambda x, y: x - y, NUMERIC), "*": (lambda x, y: x * y, NUMERIC),
    "//": (lambda x, y: x // y, NUMERIC), "%": (lambda x, y: x % y, NUMERIC),
    "<": (lambda x, y: x < y, NUMERIC), "<=": (lambda x, y: x <= y, NUMERIC),
    ">": (lambda x, y: x > y, NUMERIC), ">=": (lambda x, y: x >= y, NUMERIC),
    "&": (lambda x, y: x & y, [tf.bool]), "|": (lambda x, y: x | y, [tf.bool]),
}


@pytest.mark.parametrize("symbol,dtype", [(s, d) for s, (_, ds) in OPERATORS.items() for d in ds],
                         ids=lambda v: getattr(v, "name", v))
def test_operators(symbol, dtype):
    fn, _ = OPERATORS[symbol]
    check_op(fn, fn, _binary_inputs((2, 3), (3,), dtype, divisor=symbol in ("//", "%")))


@pytest.mark.parametrize("dtype", FLOATS + [tf.int32], ids=str)
def test_true_division_power_and_matmul_operators(dtype):
    x, y = sample((3, 3), dtype, low=1, seed=19), sample((3, 3), dtype, low=1, high=2, seed=20)
    check_op(lambda a, b: a / b, _true_divide_to(np.float64 if dtype is tf.int32 else dtype.np), [x, y])
    check_op(lambda a, b: a ** b, np.power, [x, y])
    check_op(lambda a, b: a @ b, np.matmul, [x, y])


@pytest.mark.parametrize("dtype", SIGNED, ids=str)
def test_unary_minus_and_abs_operators(dtype):
    x = sample((2, 3), dtype, seed=21)
    check_op(lambda t: -t, np.negative, [x])
    check_op(lambda t: abs(t), np.abs, [x])


def test_invert_operator_is_logical_not():
    check_op(lambda t: ~t, np.logical_not, [sample((4,), tf.bool, seed=22)])


@pytest.mark.parametrize("dtype", [tf.float32, tf.int32, tf.float64], ids=str)
def test_python_scalars_and_numpy_arrays_convert_to_the_tensor_dtype(dtype):
    x = sample((2, 3), dtype, low=1, seed=23)
    row = np.array([1, 2, 3])  # int64 numpy values take the tensor's dtype, as in TF
    check_op(lambda t: 2 + t * 3 - 1, lambda v: (2 + v * 3 - 1).astype(v.dtype), [x])
    check_op(lambda t: row - t, lambda v: (row.astype(v.dtype) - v), [x])
    check_op(lambda t: t * row, lambda v: (v * row.astype(v.dtype)), [x])
    check_op(lambda t: 10 // t, lambda v: (np.asarray(10, v.dtype) // v), [x])
    check_op(lambda t: 2 ** t, lambda v: np.power(np.asarray(2, v.dtype), v), [x])


def test_numpy_array_on_the_left_defers_to_the_tensor():
    x = tf.placeholder(tf.float32, [3])
    y = np.ones(3, np.float32) + x
    assert isinstance(y, tf.Tensor)
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, {x: [1, 2, 3]}), [2, 3, 4])


def test_python_floats_do_not_silently_truncate_into_int_tensors():
    with pytest.raises((TypeError, ValueError)):
        tf.constant([1, 2]) + 0.5


def test_tensor_equality_is_identity_so_tensors_key_dicts():
    x, y = tf.constant(1.0), tf.constant(1.0)
    assert x == x and x != y
    assert {x: 1, y: 2}[y] == 2


def test_round_is_half_to_even_as_tf():
    # TF 2.21 tf.compat.v1.round on these values: [-2, -2, -0, 0, 2, 2, 3]
    values = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.6], np.float32)
    with tf.Session() as sess:
        rounded = sess.run(tf.round(values))
    np.testing.assert_array_equal(rounded, [-2, -2, -0, 0, 2, 2, 3])
    assert np.signbit(rounded[2]) and not np.signbit(rounded[3])


def test_rounding_ops_have_no_gradient_as_tf():
    x = tf.constant([0.3, 1.7])
    for fn in (tf.round, tf.floor, tf.ceil):
        assert tf.gradients(tf.reduce_sum(fn(x) * x), x)[0] is not None  # through the product only
        assert tf.gradients(tf.reduce_sum(fn(x)), x) == [None]
