"""Every numpy-backed dtype (int8/uint8/int16/uint16/float16 beside the 32/64-bit ones, and bool) through
constants, feeds, fetches, variables, casts, elementwise math, reductions, comparisons, the wire and
checkpoints: a matrix of ops x dtypes checked against numpy."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from graphexec.rpc.tensors import tensor_from_bytes, tensor_to_bytes
from graphexec.train import saver as saver_module
from opcheck import check_op, sample

NUMBERS = [tf.int8, tf.uint8, tf.int16, tf.uint16, tf.int32, tf.int64, tf.float16, tf.float32, tf.float64]
SIGNED = [d for d in NUMBERS if d.np.kind != "u"]


def _mean(x, axis):
    if x.dtype.kind == "f":
        return np.mean(x, axis).astype(x.dtype)
    return np.trunc(np.sum(x, axis, dtype=x.dtype) / x.shape[axis]).astype(x.dtype)  # TF: C division


BINARY = {
    "add": (tf.add, np.add), "subtract": (tf.subtract, np.subtract), "multiply": (tf.multiply, np.multiply),
    "maximum": (tf.maximum, np.maximum), "minimum": (tf.minimum, np.minimum),
    "floordiv": (tf.floordiv, np.floor_divide), "mod": (tf.mod, np.mod),
    "less": (tf.less, np.less), "greater_equal": (tf.greater_equal, np.greater_equal),
    "equal": (tf.equal, np.equal), "not_equal": (tf.not_equal, np.not_equal),
    "select": (lambda x, y: tf.where(tf.less(x, y), x, y), lambda x, y: np.where(x < y, x, y)),
    "matmul": (lambda x, y: tf.matmul(x, y, transpose_b=True), lambda x, y: (x @ y.T).astype(x.dtype)),
    "concat": (lambda x, y: tf.concat([x, y], 1), lambda x, y: np.concatenate([x, y], 1)),
}
UNARY = {
    "square": (tf.square, np.square),
    "reduce_sum": (lambda x: tf.reduce_sum(x, 1), lambda x: np.sum(x, 1, dtype=x.dtype)),
    "reduce_prod": (lambda x: tf.reduce_prod(x, 0), lambda x: np.prod(x, 0, dtype=x.dtype)),
    "reduce_max": (lambda x: tf.reduce_max(x, 0), lambda x: np.max(x, 0)),
    "reduce_min": (lambda x: tf.reduce_min(x), np.min),
    "reduce_mean": (lambda x: tf.reduce_mean(x, 1), lambda x: _mean(x, 1)),
    "argmax": (lambda x: tf.argmax(x, 1), lambda x: np.argmax(x, 1)),
    "cumsum": (lambda x: tf.cumsum(x, 1), lambda x: np.cumsum(x, 1, dtype=x.dtype)),
    "cast_float32": (lambda x: tf.cast(x, tf.float32), lambda x: x.astype(np.float32)),
    "cast_int8": (lambda x: tf.cast(x, tf.int8), lambda x: x.astype(np.int8)),
    "cast_bool": (lambda x: tf.cast(x, tf.bool), lambda x: x.astype(bool)),
    "transpose": (tf.transpose, np.transpose),
    "gather": (lambda x: tf.gather(x, [1, 0, 1]), lambda x: x[[1, 0, 1]]),
    "reshape": (lambda x: tf.reshape(x, [-1]), lambda x: x.reshape(-1)),
    "tile": (lambda x: tf.tile(x, [2, 1]), lambda x: np.tile(x, (2, 1))),
}


@pytest.mark.parametrize("dtype", NUMBERS, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_across_dtypes(name, dtype):
    tf_fn, np_fn = BINARY[name]
    nonzero = name in ("floordiv", "mod")
    check_op(tf_fn, np_fn, [sample((2, 3), dtype, seed=1, nonzero=nonzero), sample((2, 3), dtype, seed=2,
                                                                                    nonzero=nonzero)])


@pytest.mark.parametrize("dtype", NUMBERS, ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_and_reductions_across_dtypes(name, dtype):
    tf_fn, np_fn = UNARY[name]
    check_op(tf_fn, np_fn, [sample((2, 3), dtype, seed=3)])


@pytest.mark.parametrize("dtype", SIGNED, ids=str)
def test_signed_ops_across_dtypes(dtype):
    for tf_fn, np_fn in ((tf.negative, np.negative), (tf.abs, np.abs), (tf.sign, np.sign)):
        check_op(tf_fn, np_fn, [sample((2, 3), dtype, seed=4)])


@pytest.mark.parametrize("dtype", [tf.uint8, tf.uint16], ids=str)
def test_unsigned_negation_is_refused_like_tf(dtype):
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"dtype {dtype.name} is not supported"):
        tf.negative(tf.constant([1], dtype))


def test_bool_logic_and_comparisons():
    a, b = sample((3, 4), tf.bool, seed=1), sample((3, 4), tf.bool, seed=2)
    check_op(tf.logical_and, np.logical_and, [a, b])
    check_op(tf.logical_or, np.logical_or, [a, b])
    check_op(tf.logical_not, np.logical_not, [a])
    check_op(tf.equal, np.equal, [a, b])
    check_op(lambda x: tf.reduce_any(x, 1), lambda x: np.any(x, 1), [a])
    check_op(lambda x: tf.cast(x, tf.uint8), lambda x: x.astype(np.uint8), [a])


@pytest.mark.parametrize("dtype", NUMBERS + [tf.bool, tf.string], ids=str)
def test_variables_wire_and_checkpoints_keep_every_dtype(dtype, tmp_path):
    value = (np.array([["a", "bc"], ["", "d"]], dtype=object) if dtype is tf.string
             else sample((2, 2), dtype, seed=5))
    if dtype is tf.string:
        value = np.vectorize(lambda s: s.encode(), otypes=[object])(value)
    back = tensor_from_bytes(tensor_to_bytes(value))
    assert back.dtype == value.dtype
    np.testing.assert_array_equal(back, value)
    variable = tf.Variable(value, name="v")
    fed = tf.placeholder(dtype, [2, 2])
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(variable.initializer)
        sess.run(variable.assign(fed), {fed: value[::-1]})
        path = saver.save(sess, str(tmp_path / "model"))
    with tf.Session() as sess:
        saver.restore(sess, path)
        restored = sess.run(variable)
    assert restored.dtype == value.dtype
    np.testing.assert_array_equal(restored, value[::-1])
    tensors, _ = saver_module.decode(open(path + saver_module.SUFFIX if not path.endswith(saver_module.SUFFIX)
                                          else path, "rb").read())
    assert tensors["v"].dtype == value.dtype
