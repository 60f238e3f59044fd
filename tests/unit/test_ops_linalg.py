"""linalg_ops against numpy (batched, float32 and float64), with finite-difference gradients; einsum and
tensordot across dtypes and broadcasting."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors
from opcheck import check_grad, check_op, sample

RNG = np.random.default_rng(0)
A = RNG.standard_normal((2, 3, 3))
SPD = A @ np.swapaxes(A, -1, -2) + 3 * np.eye(3)
B = RNG.standard_normal((2, 3, 2))


def _sym(x):
    return (x + tf.matrix_transpose(x)) / 2


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=str)
def test_decompositions_and_solves_match_numpy(dtype):
    a, spd, b = (x.astype(dtype.np) for x in (A, SPD, B))
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype is tf.float32 else {}
    check_op(tf.matrix_inverse, np.linalg.inv, [a], **tol)
    check_op(tf.linalg.inv, np.linalg.inv, [a[0]], **tol)
    check_op(tf.matrix_determinant, lambda x: np.linalg.det(x).astype(x.dtype), [a], **tol)
    check_op(tf.cholesky, np.linalg.cholesky, [spd], **tol)
    check_op(tf.matrix_solve, np.linalg.solve, [a, b], **tol)
    check_op(lambda x, y: tf.linalg.solve(x, y, adjoint=True), lambda x, y: np.linalg.solve(np.swapaxes(x, -1, -2), y),
             [a, b], **tol)
    check_op(lambda x: tf.linalg.eigh(x)[0], lambda x: np.linalg.eigh(x)[0], [spd], **tol)
    check_op(tf.linalg.eigvalsh, lambda x: np.linalg.eigvalsh(x), [spd], **tol)
    check_op(lambda x: tf.svd(x, compute_uv=False), lambda x: np.linalg.svd(x, compute_uv=False), [b], **tol)
    with tf.Session() as sess:
        s, u, v = sess.run(tf.svd(b))
        values, vectors = sess.run(tf.self_adjoint_eig(spd))
    np.testing.assert_allclose((u * s[..., None, :]) @ np.swapaxes(v, -1, -2), b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(vectors @ (values[..., None] * np.swapaxes(vectors, -1, -2)), spd, rtol=1e-4, atol=1e-4)


def test_linalg_gradients_agree_with_finite_differences():
    check_grad(tf.matrix_inverse, [A])
    check_grad(tf.matrix_determinant, [A])
    check_grad(tf.matrix_solve, [A, B])
    check_grad(lambda x, y: tf.matrix_solve(x, y, adjoint=True), [A, B])
    check_grad(lambda x: tf.cholesky(_sym(x)), [SPD])
    check_grad(lambda x: list(tf.self_adjoint_eig(_sym(x))), [SPD])
    check_grad(lambda x: [tf.svd(x)[0], tf.abs(tf.svd(x)[1]), tf.abs(tf.svd(x)[2])], [B])  # (signs are arbitrary)


@pytest.mark.parametrize("dtype", [tf.int32, tf.float16, tf.float64, tf.bool], ids=str)
def test_diagonals_transposes_and_bands(dtype):
    x = sample((2, 3, 4), dtype, seed=5)
    check_op(tf.matrix_diag_part, lambda v: np.diagonal(v, axis1=-2, axis2=-1), [x])
    check_op(tf.matrix_transpose, lambda v: np.swapaxes(v, -1, -2), [x])
    check_op(tf.matrix_diag, lambda d: d[..., None, :] * np.eye(4, dtype=d.dtype), [x[0]])
    check_op(lambda v: tf.matrix_band_part(v, 1, 0),
             lambda v: np.where(np.tril(np.triu(np.ones((3, 4)), -1)).astype(bool), v, np.zeros((), v.dtype)), [x])

    def set_diag(v, d):
        out = v.copy()
        out[..., range(3), range(3)] = d
        return out

    check_op(tf.matrix_set_diag, set_diag, [x, x[:, 0, :3]])


def test_trace_eye_and_their_neighbours():
    check_op(tf.trace, lambda v: np.trace(v, axis1=-2, axis2=-1), [A])
    check_op(tf.linalg.trace, lambda v: np.trace(v, axis1=-2, axis2=-1).astype(v.dtype), [sample((2, 2, 3), tf.int32)])
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(tf.eye(2, 3, batch_shape=[2], dtype=tf.int32)),
                                      np.broadcast_to(np.eye(2, 3, dtype=np.int32), (2, 2, 3)))
    for fn in (tf.matrix_diag, tf.matrix_diag_part, tf.trace, lambda x: tf.matrix_set_diag(x, x[..., 0, :]),
               lambda x: tf.matrix_band_part(x, 0, 1)):
        check_grad(fn, [B])


@pytest.mark.parametrize("dtype", [tf.int8, tf.int32, tf.int64, tf.float16, tf.float32, tf.float64], ids=str)
def test_einsum_and_tensordot_match_numpy(dtype):
    x, y = sample((2, 3, 4), dtype, seed=6, low=-2, high=2), sample((2, 4, 5), dtype, seed=7, low=-2, high=2)
    check_op(lambda p, q: tf.einsum("bij,bjk->bik", p, q), lambda p, q: np.einsum("bij,bjk->bik", p, q), [x, y])
    check_op(lambda p, q: tf.einsum("...ij,...jk->...ik", p, q), lambda p, q: np.einsum("...ij,...jk", p, q), [x, y])
    check_op(lambda p: tf.einsum("bij->j", p), lambda p: np.einsum("bij->j", p), [x])
    check_op(lambda p, q: tf.einsum("bij,bjk", p, q), lambda p, q: np.einsum("bij,bjk", p, q), [x, y])
    check_op(lambda p, q: tf.tensordot(p, q, [[0, 2], [0, 1]]), lambda p, q: np.tensordot(p, q, [[0, 2], [0, 1]]),
             [x, y])
    check_op(lambda p, q: tf.tensordot(p, q, 1), lambda p, q: np.tensordot(p, q, 1), [x[0], y[0]])
    check_op(lambda p: tf.einsum("ij,kj->ik", p, tf.ones([1, 4], p.dtype)),  # a size-1 subscript broadcasts
             lambda p: np.einsum("ij,kj->ik", p, np.ones((1, 4), p.dtype)), [x[0]])


def test_einsum_tensordot_and_batch_matmul_gradients():
    x, y = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((2, 4, 5))
    check_grad(lambda p, q: tf.einsum("bij,bjk->bik", p, q), [x, y])
    check_grad(lambda p, q: tf.einsum("bij,bjk->k", p, q), [x, y])
    check_grad(lambda p, q: tf.einsum("...ij,...jk->...ik", p, q), [x, y])
    check_grad(lambda p, q: tf.tensordot(p, q, [[0, 2], [0, 1]]), [x, y])
    check_grad(lambda p, q: tf.matmul(p, q, adjoint_a=True), [np.swapaxes(x, -1, -2), y])
    check_grad(lambda p, q: tf.linalg.matmul(p, q, transpose_b=True), [x, np.swapaxes(y, -1, -2)])


def test_bad_linalg_input_is_clear():
    with pytest.raises(errors.InvalidArgumentError, match="square"):
        tf.matrix_inverse(tf.zeros([2, 3]))
    with pytest.raises(errors.InvalidArgumentError, match="not supported"):
        tf.cholesky(tf.zeros([2, 2], tf.int32))
    with pytest.raises(errors.InvalidArgumentError, match="sizes"):
        tf.einsum("ij,jk->ik", tf.zeros([2, 3]), tf.zeros([4, 2]))
    with pytest.raises(errors.InvalidArgumentError, match="LinAlgError|Singular"):
        with tf.Session() as sess:
            sess.run(tf.matrix_inverse(tf.placeholder_with_default(np.zeros((2, 2)), [2, 2])))


@pytest.mark.parametrize("dtype", [tf.float16, tf.float32, tf.float64], ids=str)
def test_norm_logdet_matvec_match_numpy(dtype):
    x = sample((3, 4), dtype, seed=8)
    check_op(tf.norm, lambda v: np.linalg.norm(v.astype(np.float64)).astype(v.dtype), [x])
    check_op(lambda v: tf.norm(v, axis=1, keepdims=True),
             lambda v: np.linalg.norm(v.astype(np.float64), axis=1, keepdims=True).astype(v.dtype), [x])
    for order in (1, 3, np.inf):
        check_op(lambda v, o=order: tf.linalg.norm(v, ord=o, axis=0),
                 lambda v, o=order: np.linalg.norm(v.astype(np.float64), o, axis=0).astype(v.dtype), [x],
                 rtol=2e-3 if dtype is tf.float16 else None)
    check_op(lambda v: tf.linalg.matvec(v, tf.ones([4], v.dtype)), lambda v: v.sum(1, dtype=v.dtype), [x],
             rtol=2e-3 if dtype is tf.float16 else None)
    if dtype is not tf.float16:
        check_op(tf.linalg.logdet, lambda v: np.linalg.slogdet(v)[1].astype(v.dtype), [SPD.astype(dtype.np)],
                 rtol=1e-4)


def test_norm_and_logdet_gradients():
    check_grad(lambda v: tf.norm(v, axis=1), [B[0]])
    check_grad(lambda v: tf.norm(v, ord=3, axis=0), [B[0]])
    check_grad(lambda v: tf.linalg.logdet(_sym(v)), [SPD])
    with pytest.raises(ValueError, match="vectors"):
        tf.norm(tf.zeros([2, 2]), ord=1)
