"""segment_ops: segment reductions, unique, dynamic_partition/stitch, boolean_mask, sequence_mask, checked
against numpy across dtypes, with finite-difference gradients."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors
from opcheck import check_grad, check_op, sample

NUMBERS = [tf.int8, tf.uint8, tf.int16, tf.int32, tf.int64, tf.float16, tf.float32, tf.float64]
IDS = np.array([0, 0, 1, 3, 3, 3])


def _segments(x, reduce, empty=0):
    rows = IDS[-1] + 1
    out = np.full((rows,) + x.shape[1:], empty, dtype=x.dtype)
    for r in range(rows):
        if (IDS == r).any():
            out[r] = reduce(x[IDS == r], axis=0)
    return out


@pytest.mark.parametrize("dtype", NUMBERS, ids=str)
def test_segment_reductions_match_numpy(dtype):
    x = sample((6, 2), dtype, seed=1)
    check_op(lambda d: tf.segment_sum(d, IDS), lambda d: _segments(d, lambda v, axis: v.sum(axis, dtype=d.dtype)), [x])
    check_op(lambda d: tf.segment_max(d, IDS), lambda d: _segments(d, np.max), [x])
    check_op(lambda d: tf.segment_min(d, IDS), lambda d: _segments(d, np.min), [x])
    if tf.as_dtype(dtype).is_floating:
        check_op(lambda d: tf.segment_mean(d, IDS), lambda d: _segments(d, np.mean), [x])
    check_op(lambda d: tf.unsorted_segment_sum(d, [2, 0, 2, 1, 0, 0], 3),
             lambda d: np.stack([d[[1, 4, 5]].sum(0, dtype=d.dtype), d[[3]].sum(0, dtype=d.dtype),
                                 d[[0, 2]].sum(0, dtype=d.dtype)]), [x])


def test_segment_gradients():
    x = np.random.default_rng(0).standard_normal((6, 2))
    for fn in (tf.segment_sum, tf.segment_mean, tf.segment_max, tf.segment_min):
        check_grad(lambda d, fn=fn: fn(d, IDS), [x])


def test_segment_ids_must_be_sorted_and_fit():
    with tf.Session() as sess:
        ids = tf.placeholder(tf.int32, [None])
        with pytest.raises(errors.InvalidArgumentError, match="sorted"):
            sess.run(tf.segment_sum([1.0, 2.0], ids), {ids: [1, 0]})
        with pytest.raises(errors.InvalidArgumentError, match="same size"):
            sess.run(tf.segment_sum([1.0, 2.0], ids), {ids: [0]})
    with pytest.raises(errors.InvalidArgumentError, match="int32 or int64"):
        tf.segment_sum([1.0], [0.0])


@pytest.mark.parametrize("dtype", NUMBERS + [tf.bool, tf.string], ids=str)
def test_unique_keeps_first_appearance_order(dtype):
    values = np.array([3, 1, 3, 2, 1, 0, 2])
    x = np.array([str(v) for v in values], dtype=object) if dtype is tf.string else values.astype(tf.as_dtype(dtype).np)
    y, idx = tf.unique(x)
    with tf.Session() as sess:
        got_y, got_idx = sess.run([y, idx])
    want = list(dict.fromkeys(x.tolist()))
    assert got_y.tolist() == [w.encode() if isinstance(w, str) else w for w in want]
    assert got_idx.dtype == np.int32
    np.testing.assert_array_equal(got_y[got_idx], [v.encode() if isinstance(v, str) else v for v in x.tolist()])
    assert tf.unique(x, out_idx=tf.int64).idx.dtype is tf.int64


def test_dynamic_partition_and_stitch_round_trip():
    for dtype in NUMBERS:
        x = sample((5, 2), dtype, seed=2)
        parts = [1, 0, 2, 1, 0]
        check_op(lambda d: tf.dynamic_partition(d, parts, 3), lambda d: [d[[1, 4]], d[[0, 3]], d[[2]]], [x],
                 static_shape=False)
        check_op(lambda d: tf.dynamic_stitch([[1, 4], [0, 3], [2]], [d[:2], d[2:4], d[4:]]),
                 lambda d: d[[2, 0, 4, 3, 1]], [x], static_shape=False)
    stitched = tf.dynamic_stitch([[0, 1], [1]], [[1.0, 2.0], [5.0]])  # later indices win
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(stitched), [1.0, 5.0])
        with pytest.raises(errors.InvalidArgumentError, match="not in \\[0, 2\\)"):
            sess.run(tf.dynamic_partition([1.0, 2.0], [0, 2], 2))


def test_partition_and_stitch_gradients():
    rng = np.random.default_rng(0)
    check_grad(lambda d: tf.dynamic_partition(d, [[1, 0], [0, 1], [1, 1]], 2), [rng.standard_normal((3, 2, 2))])
    check_grad(lambda a, b: tf.dynamic_stitch([[0, 2], [1]], [a, b]),
               [rng.standard_normal((2, 3)), rng.standard_normal((1, 3))])


@pytest.mark.parametrize("dtype", NUMBERS + [tf.bool], ids=str)
def test_boolean_mask_matches_numpy(dtype):
    x = sample((3, 4), dtype, seed=3)
    rows, cells = np.array([True, False, True]), sample((3, 4), tf.bool, seed=4)
    check_op(lambda d: tf.boolean_mask(d, rows), lambda d: d[rows], [x], static_shape=False)
    check_op(lambda d: tf.boolean_mask(d, cells), lambda d: d[cells], [x], static_shape=False)
    check_op(lambda d: tf.boolean_mask(d, [True, False, False, True], axis=1), lambda d: d[:, [0, 3]], [x],
             static_shape=False)


def test_boolean_mask_gradient_and_errors():
    check_grad(lambda d: tf.boolean_mask(d, [[True, False], [True, True]]),
               [np.random.default_rng(1).standard_normal((2, 2, 3))])
    with pytest.raises(ValueError, match="incompatible"):
        tf.boolean_mask(tf.zeros([3, 2]), [True, False])
    with pytest.raises(ValueError, match="scalar"):
        tf.boolean_mask(tf.zeros([3]), True)


def test_sequence_mask():
    lengths = np.array([[1, 3], [0, 2]])
    with tf.Session() as sess:
        got = sess.run(tf.sequence_mask(lengths))
        np.testing.assert_array_equal(got, np.arange(3) < lengths[..., None])
        floats = sess.run(tf.sequence_mask([2, 0], maxlen=4, dtype=tf.float32))
    np.testing.assert_array_equal(floats, [[1, 1, 0, 0], [0, 0, 0, 0]])
    assert floats.dtype == np.float32
    assert tf.sequence_mask([2, 0], maxlen=4).shape.as_list() == [2, 4]
