"""Linear algebra over the last two axes (batched over leading ones): inverse, determinant, cholesky,
solve, svd, eigh, diagonals, trace, eye, matrix_transpose, einsum and tensordot.

Decompositions run on ctx.xp.linalg (numpy or CuPy). Gradients are TF's: the inverse, determinant
and solve rules are written with other ops; cholesky's, eigh's and svd's adjoints are kernels of
their own grad ops (as TF's CholeskyGrad), which have no second derivative.
"""
from __future__ import annotations

import string

import numpy as np

from graphexec import dtypes
from graphexec.framework import apply_op, name_scope
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.emit import emit
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.ops.shape_inputs import shape_of

# The public API (graphexec/__init__.py star-imports it as tf.<name>; tf.linalg re-exports it).
__all__ = ["cholesky", "einsum", "eye", "norm", "matrix_band_part", "matrix_determinant", "matrix_diag", "matrix_diag_part",
           "matrix_inverse", "matrix_set_diag", "matrix_solve", "matrix_transpose", "self_adjoint_eig",
           "self_adjoint_eigvals", "svd", "tensordot", "trace"]

FLOATS = (dtypes.float32, dtypes.float64)  # numpy's linalg computes in these


# -- shape rules ---------------------------------------------------------------------------------------
def _square(args, attrs):
    shape = args[0].shape
    if shape is None:
        return None
    if len(shape) < 2:
        raise ShapeError(f"input must be at least rank 2, got shape {rules.fmt(shape)}")
    if None not in shape[-2:] and shape[-1] != shape[-2]:
        raise ShapeError(f"input must be square matrices, got shape {rules.fmt(shape)}")
    return shape


def _batch_scalar(args, attrs):
    shape = _square(args, attrs)
    return None if shape is None else shape[:-2]


def _float_matrix(args, attrs):
    return rules.same_dtype(*FLOATS)(args, attrs)


def _transpose(x):
    return emit("MatrixTranspose", x)


def _matmul(a, b, transpose_a=False, transpose_b=False):
    return emit("MatMul", a, b, transpose_a=transpose_a, transpose_b=transpose_b)


def _times_batch(x, scalars):
    """x [..., m, n] times a scalar per matrix [...]."""
    return emit("Mul", x, emit("ExpandDims", emit("ExpandDims", scalars, axis=-1), axis=-1))


# -- MatrixInverse, MatrixDeterminant, MatrixSolve -------------------------------------------------------
def _inverse_grad(op, dz):
    inverse = op.outputs[0]
    return [emit("Neg", _matmul(inverse, _matmul(dz, inverse, transpose_b=True), transpose_a=True))]


def _inverse(ctx, x, adjoint):
    return ctx.xp.linalg.inv(ctx.xp.swapaxes(x, -1, -2) if adjoint else x)


MatrixInverse = op("MatrixInverse", shape=_square, dtype=_float_matrix, kernel=_inverse, grad=_inverse_grad,
                   inputs=("input",), attrs={"adjoint": attr("bool", False)})
MatrixDeterminant = op("MatrixDeterminant", shape=_batch_scalar, dtype=_float_matrix,
                       kernel=lambda ctx, x: ctx.xp.asarray(ctx.xp.linalg.det(x), dtype=x.dtype),
                       grad=lambda op, dz: [_times_batch(_transpose(emit("MatrixInverse", op.inputs[0])),
                                                         emit("Mul", dz, op.outputs[0]))],
                       inputs=("input",))


def _solve_shape(args, attrs):
    a, b = args[0].shape, args[1].shape
    _square(args[:1], attrs)
    if a is None or b is None:
        return b
    if len(b) < 2 or (None not in (a[-1], b[-2]) and a[-1] != b[-2]):
        raise ShapeError(f"rhs {rules.fmt(b)} must be a batch of matrices with as many rows as matrix {rules.fmt(a)}")
    return b


def _solve(ctx, matrix, rhs, adjoint):
    return ctx.xp.linalg.solve(ctx.xp.swapaxes(matrix, -1, -2) if adjoint else matrix, rhs)


def _solve_grad(op, dz):
    matrix, _ = op.inputs
    adjoint = op.attrs["adjoint"]
    grad_rhs = emit("MatrixSolve", matrix, dz, adjoint=not adjoint)
    x = op.outputs[0]
    grad_matrix = emit("Neg", _matmul(x, grad_rhs, transpose_b=True) if adjoint
                       else _matmul(grad_rhs, x, transpose_b=True))
    return [grad_matrix, grad_rhs]


MatrixSolve = op("MatrixSolve", shape=_solve_shape, dtype=_float_matrix, kernel=_solve, grad=_solve_grad,
                 inputs=("matrix", "rhs"), attrs={"adjoint": attr("bool", False)})


# -- Cholesky (and its grad op) ------------------------------------------------------------------------------
def _cholesky_grad_kernel(ctx, chol, grad):
    """TF's CholeskyGrad: A's gradient from L = chol(A) and dL, symmetrized."""
    xp = ctx.xp
    n = chol.shape[-1]
    inverse = xp.linalg.inv(chol)
    middle = xp.matmul(xp.swapaxes(chol, -1, -2), grad)
    middle = xp.tril(middle) - 0.5 * (xp.eye(n, dtype=chol.dtype) * middle)
    out = xp.matmul(xp.matmul(xp.swapaxes(inverse, -1, -2), middle), inverse)
    return 0.5 * (out + xp.swapaxes(out, -1, -2))


CholeskyGrad = op("CholeskyGrad", shape=_square, dtype=_float_matrix, kernel=_cholesky_grad_kernel,
                  grad=NOT_DIFFERENTIABLE, inputs=("l", "grad"))
Cholesky = op("Cholesky", shape=_square, dtype=_float_matrix, kernel=lambda ctx, x: ctx.xp.linalg.cholesky(x),
              grad=lambda op, dz: [emit("CholeskyGrad", op.outputs[0], dz)], inputs=("input",))


# -- SelfAdjointEigV2 (and its grad op) ---------------------------------------------------------------------
def _eig_shapes(args, attrs):
    shape = _square(args, attrs)
    if shape is None:
        return [None, None]
    return [shape[:-1], shape if attrs["compute_v"] else (0,)]


def _eig(ctx, x, compute_v):
    values, vectors = ctx.xp.linalg.eigh(x)
    return [values, vectors if compute_v else ctx.xp.zeros((0,), dtype=x.dtype)]


def _eig_grad_kernel(ctx, values, vectors, grad_values, grad_vectors):
    """A = V diag(e) V^T: dA = V (diag(de) + F o (V^T dV)) V^T, F_ij = 1/(e_j - e_i) off the diagonal;
    symmetrized (only A's lower triangle is read, as TF, but the symmetric part is the gradient)."""
    xp = ctx.xp
    gap = values[..., None, :] - values[..., :, None]
    eye = xp.eye(values.shape[-1], dtype=bool)
    inverse_gap = xp.where(eye, 0, 1 / xp.where(eye, 1, gap))
    middle = inverse_gap * xp.matmul(xp.swapaxes(vectors, -1, -2), grad_vectors)
    middle = middle + grad_values[..., None] * xp.eye(values.shape[-1], dtype=values.dtype)
    out = xp.matmul(vectors, xp.matmul(middle, xp.swapaxes(vectors, -1, -2)))
    return 0.5 * (out + xp.swapaxes(out, -1, -2))


def _eig_grad(op, d_values, d_vectors):
    if not op.attrs["compute_v"]:
        raise NotImplementedError("the gradient of self_adjoint_eigvals needs the eigenvectors: use "
                                  "self_adjoint_eig")
    values, vectors = op.outputs
    d_values = d_values if d_values is not None else emit("ZerosLike", values)
    d_vectors = d_vectors if d_vectors is not None else emit("ZerosLike", vectors)
    return [emit("SelfAdjointEigGrad", values, vectors, d_values, d_vectors)]


SelfAdjointEigGrad = op("SelfAdjointEigGrad", shape=lambda args, attrs: args[1].shape, dtype=_float_matrix,
                        kernel=_eig_grad_kernel, grad=NOT_DIFFERENTIABLE,
                        inputs=("e", "v", "grad_e", "grad_v"))
SelfAdjointEigV2 = op("SelfAdjointEigV2", shape=_eig_shapes, dtype=lambda args, attrs: [_float_matrix(args, attrs)] * 2,
                      kernel=_eig, grad=_eig_grad, inputs=("input",), attrs={"compute_v": attr("bool", True)})


# -- Svd (and its grad op) -------------------------------------------------------------------------------------
def _svd_shapes(args, attrs):
    shape = args[0].shape
    if shape is None:
        return [None, None, None]
    if len(shape) < 2:
        raise ShapeError(f"input must be at least rank 2, got shape {rules.fmt(shape)}")
    batch, (m, n) = shape[:-2], shape[-2:]
    k = None if None in (m, n) else min(m, n)
    if not attrs["compute_uv"]:
        return [batch + (k,), (0,), (0,)]
    full = attrs["full_matrices"]
    return [batch + (k,), batch + (m, m if full else k), batch + (n, n if full else k)]


def _svd(ctx, x, compute_uv, full_matrices):
    xp = ctx.xp
    if not compute_uv:
        empty = xp.zeros((0,), dtype=x.dtype)
        return [xp.linalg.svd(x, compute_uv=False), empty, empty]
    u, s, vh = xp.linalg.svd(x, full_matrices=full_matrices)
    return [s, u, xp.swapaxes(vh, -1, -2)]


def _svd_grad_kernel(ctx, s, u, v, ds, du, dv):
    """Reduced SVD A = U diag(s) V^T (Townsend's adjoint, real case): dA = U [diag(ds) + (F o (U^T dU - dU^T U))
    diag(s) + diag(s) (F o (V^T dV - dV^T V))] V^T + (I - U U^T) dU diag(1/s) V^T + U diag(1/s) dV^T (I - V V^T)."""
    xp = ctx.xp
    k = s.shape[-1]
    eye = xp.eye(k, dtype=bool)
    squares = s[..., None, :] ** 2 - s[..., :, None] ** 2
    f = xp.where(eye, 0, 1 / xp.where(eye, 1, squares))
    ut, vt = xp.swapaxes(u, -1, -2), xp.swapaxes(v, -1, -2)
    j = f * (xp.matmul(ut, du) - xp.matmul(xp.swapaxes(du, -1, -2), u))
    kk = f * (xp.matmul(vt, dv) - xp.matmul(xp.swapaxes(dv, -1, -2), v))
    smat = s[..., None, :] * xp.eye(k, dtype=s.dtype)
    inner = ds[..., None, :] * xp.eye(k, dtype=s.dtype) + xp.matmul(j, smat) + xp.matmul(smat, kk)
    out = xp.matmul(u, xp.matmul(inner, vt))
    inv_s = 1 / s
    m, n = u.shape[-2], v.shape[-2]
    out = out + xp.matmul(xp.eye(m, dtype=s.dtype) - xp.matmul(u, ut), du * inv_s[..., None, :]) @ vt
    out = out + xp.matmul(u * inv_s[..., None, :], xp.matmul(xp.swapaxes(dv, -1, -2), xp.eye(n, dtype=s.dtype)
                                                              - xp.matmul(v, vt)))
    return out


def _svd_grad(op, ds, du, dv):
    if not op.attrs["compute_uv"] or op.attrs["full_matrices"]:
        raise NotImplementedError("the gradient of svd is implemented for compute_uv=True, full_matrices=False")
    s, u, v = op.outputs
    filled = [g if g is not None else emit("ZerosLike", t) for g, t in ((ds, s), (du, u), (dv, v))]
    return [emit("SvdGrad", s, u, v, *filled)]


SvdGrad = op("SvdGrad", shape=lambda args, attrs: None if None in (args[1].shape, args[2].shape)
             else args[1].shape[:-1] + args[2].shape[-2:-1],
             dtype=lambda args, attrs: args[0].dtype, kernel=_svd_grad_kernel, grad=NOT_DIFFERENTIABLE,
             inputs=("s", "u", "v", "grad_s", "grad_u", "grad_v"))
Svd = op("Svd", shape=_svd_shapes, dtype=lambda args, attrs: [_float_matrix(args, attrs)] * 3, kernel=_svd,
         grad=_svd_grad, inputs=("input",),
         attrs={"compute_uv": attr("bool", True), "full_matrices": attr("bool", False)})


# -- diagonals and transposes -----------------------------------------------------------------------------------
def _diag_shape(args, attrs):
    shape = args[0].shape
    if shape is None:
        return None
    if not shape:
        raise ShapeError("diagonal must be at least rank 1")
    return shape + shape[-1:]


def _diag_part_shape(args, attrs):
    shape = args[0].shape
    if shape is None:
        return None
    if len(shape) < 2:
        raise ShapeError(f"input must be at least rank 2, got shape {rules.fmt(shape)}")
    m, n = shape[-2:]
    return shape[:-2] + (None if None in (m, n) else min(m, n),)


def _matrix_diag(ctx, diagonal):
    xp = ctx.xp
    n = diagonal.shape[-1]
    return diagonal[..., None, :] * xp.eye(n, dtype=diagonal.dtype)


def _diag_part(ctx, x):
    return ctx.xp.diagonal(x, axis1=-2, axis2=-1).copy()


def _set_diag(ctx, x, diagonal):
    out = x.copy()
    k = min(x.shape[-2:])
    index = ctx.xp.arange(k)
    out[..., index, index] = diagonal
    return out


def _set_diag_shape(args, attrs):
    expected = _diag_part_shape(args[:1], attrs)
    rules.broadcast_shapes(expected, args[1].shape)  # (raises on a mismatch)
    return args[0].shape


def _same_type(args, attrs):
    return rules.same_dtype(*dtypes.NUMERIC, dtypes.bool)(args, attrs)


MatrixDiag = op("MatrixDiag", shape=_diag_shape, dtype=_same_type, kernel=_matrix_diag,
                grad=lambda op, dz: [emit("MatrixDiagPart", dz)], inputs=("diagonal",))
MatrixDiagPart = op("MatrixDiagPart", shape=_diag_part_shape, dtype=_same_type, kernel=_diag_part,
                    grad=lambda op, dz: [emit("MatrixSetDiag", emit("ZerosLike", op.inputs[0]), dz)],
                    inputs=("input",))
MatrixSetDiag = op("MatrixSetDiag", shape=_set_diag_shape, dtype=_same_type, kernel=_set_diag,
                   grad=lambda op, dz: [emit("MatrixSetDiag", dz, emit("ZerosLike", op.inputs[1])),
                                        emit("MatrixDiagPart", dz)],
                   inputs=("input", "diagonal"))


def _band_part(ctx, x, num_lower, num_upper):
    xp = ctx.xp
    m, n = x.shape[-2:]
    rows, cols = xp.arange(m)[:, None], xp.arange(n)[None, :]
    keep = ((num_lower < 0) | (rows - cols <= num_lower)) & ((num_upper < 0) | (cols - rows <= num_upper))
    return xp.where(keep, x, xp.zeros((), dtype=x.dtype))


def _matrices(args, attrs):
    """Shape rule of ops whose output is shaped as their input, a batch of matrices."""
    _diag_part_shape(args[:1], attrs)  # (checks the rank)
    return args[0].shape


MatrixBandPart = op("MatrixBandPart", shape=_matrices,
                    dtype=lambda args, attrs: args[0].dtype, kernel=_band_part,
                    grad=lambda op, dz: [emit("MatrixBandPart", dz, num_lower=op.attrs["num_lower"],
                                              num_upper=op.attrs["num_upper"])],
                    inputs=("input",), attrs={"num_lower": attr("int"), "num_upper": attr("int")})


def _transpose_shape(args, attrs):
    shape = args[0].shape
    if shape is None:
        return None
    if len(shape) < 2:
        raise ShapeError(f"input must be at least rank 2, got shape {rules.fmt(shape)}")
    return shape[:-2] + (shape[-1], shape[-2])


MatrixTranspose = op("MatrixTranspose", shape=_transpose_shape, dtype=lambda args, attrs: args[0].dtype,
                     kernel=lambda ctx, x: ctx.xp.swapaxes(x, -1, -2).copy(),
                     grad=lambda op, dz: [emit("MatrixTranspose", dz)], inputs=("x",))


# -- Einsum ------------------------------------------------------------------------------------------------------
def _parse(equation: str, count: int):
    if "->" not in equation:
        raise ShapeError(f"einsum equation {equation!r} needs an explicit output ('->')")
    inputs, output = equation.replace(" ", "").split("->")
    terms = inputs.split(",")
    if len(terms) != count:
        raise ShapeError(f"einsum equation {equation!r} names {len(terms)} operands, got {count}")
    return terms, output


def _einsum_shape(args, attrs):
    terms, output = _parse(attrs["equation"], len(args))
    if any(letter not in "".join(terms) for letter in output):
        raise ShapeError(f"einsum output subscripts {output!r} must appear in the inputs")
    if "." in attrs["equation"]:
        return None
    dims: dict[str, set] = {}
    for term, a in zip(terms, args):
        if a.shape is None:
            continue
        if len(term) != len(a.shape):
            raise ShapeError(f"einsum term {term!r} has {len(term)} subscripts, operand has shape {rules.fmt(a.shape)}")
        for letter, dim in zip(term, a.shape):
            dims.setdefault(letter, set()).add(dim)
    sizes = {}
    for letter, seen in dims.items():
        known = seen - {None, 1}
        if len(known) > 1:
            raise ShapeError(f"einsum subscript {letter!r} has sizes {sorted(known)}")
        sizes[letter] = known.pop() if known else (1 if seen == {1} else None)
    return tuple(sizes.get(letter) for letter in output)


def _einsum_grad(op, dz):
    terms, output = _parse(op.attrs["equation"], len(op.inputs))
    if "." in op.attrs["equation"]:
        raise NotImplementedError("the gradient of einsum needs the equation without '...' (build it with known "
                                  "ranks: graphexec expands '...' then)")
    grads = []
    for k, (term, x) in enumerate(zip(terms, op.inputs)):
        if len(set(term)) != len(term):
            raise NotImplementedError(f"the gradient of einsum with a repeated subscript in {term!r}")
        others = [t for j, t in enumerate(terms) if j != k]
        kept = "".join(c for c in term if c in output or any(c in t for t in others))
        operands = [dz] + [t for j, t in enumerate(op.inputs) if j != k]
        grad = emit("Einsum", *operands, equation=",".join([output, *others]) + "->" + kept)
        if kept != term:  # subscripts summed within this operand alone: broadcast the gradient back over them
            expanded = [i for i, c in enumerate(term) if c not in kept]
            for axis in expanded:
                grad = emit("ExpandDims", grad, axis=axis)
            grad = emit("BroadcastTo", grad, shape_of(x))
        grads.append(grad)
    return grads


Einsum = op("Einsum", shape=_einsum_shape, dtype=lambda args, attrs: rules.same_dtype(*dtypes.NUMERIC)(args, attrs),
            kernel=lambda ctx, *xs, equation: ctx.xp.einsum(equation, *xs), grad=_einsum_grad,
            inputs=("*inputs",), attrs={"equation": attr("string")})


def _expand_ellipsis(equation: str, tensors) -> str:
    """'...' replaced by explicit subscripts when every operand's rank is known (so gradients work)."""
    if "..." not in equation or any(t._shape is None for t in tensors):
        return equation
    inputs, output = equation.replace(" ", "").split("->") if "->" in equation else (equation, None)
    terms = inputs.split(",")
    unused = [c for c in string.ascii_letters if c not in equation]
    widest = max(len(t._shape) - (len(term) - 3) for term, t in zip(terms, tensors) if "..." in term)
    batch = "".join(unused[:widest])
    expanded = [term.replace("...", batch[widest - (len(t._shape) - (len(term) - 3)):]) if "..." in term else term
                for term, t in zip(terms, tensors)]
    return ",".join(expanded) + "->" + (output.replace("...", batch) if output is not None else "")


def einsum(equation, *inputs, name=None, **kwargs):
    tensors = [convert_to_tensor(x) for x in inputs]
    equation = equation.replace(" ", "")
    if "->" not in equation:  # implicit output: the subscripts that appear once, in alphabetical order
        letters = equation.replace(",", "").replace(".", "")
        equation += "->" + ("..." if "..." in equation else "") + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1))
    equation = _expand_ellipsis(equation, tensors)
    return apply_op("Einsum", tensors, {"equation": equation}, name or "Einsum").outputs[0]


def tensordot(a, b, axes, name=None):
    """Sum over `axes` of a and b (an int: a's last and b's first that many; or two lists), via einsum."""
    a, b = convert_to_tensor(a), convert_to_tensor(b)
    if a._shape is None or b._shape is None:
        raise ValueError("tensordot needs the ranks of a and b known when the graph is built")
    rank_a, rank_b = len(a._shape), len(b._shape)
    if isinstance(axes, (int, np.integer)):
        axes_a, axes_b = list(range(rank_a - int(axes), rank_a)), list(range(int(axes)))
    else:
        axes_a, axes_b = ([int(axes[0])], [int(axes[1])]) if np.ndim(axes[0]) == 0 else (list(axes[0]), list(axes[1]))
    if len(axes_a) != len(axes_b):
        raise ValueError(f"tensordot axes {axes} must name as many axes of a as of b")
    axes_a, axes_b = [x % rank_a for x in axes_a], [x % rank_b for x in axes_b]
    letters = iter(string.ascii_lowercase)
    term_a = [next(letters) for _ in range(rank_a)]
    term_b = [next(letters) for _ in range(rank_b)]
    for i, j in zip(axes_a, axes_b):
        term_b[j] = term_a[i]
    out = [c for i, c in enumerate(term_a) if i not in axes_a] + [c for j, c in enumerate(term_b) if j not in axes_b]
    equation = f"{''.join(term_a)},{''.join(term_b)}->{''.join(out)}"
    with name_scope(name, "Tensordot") as scope:
        return apply_op("Einsum", (a, b), {"equation": equation}, scope).outputs[0]


# -- Python API ---------------------------------------------------------------------------------------------
def _unary(op_type, **attrs):
    def fn(x, name=None):
        return apply_op(op_type, (convert_to_tensor(x),), attrs, name or op_type).outputs[0]

    fn.__name__ = op_type
    return fn


matrix_inverse = _unary("MatrixInverse")
matrix_determinant = _unary("MatrixDeterminant")
cholesky = _unary("Cholesky")
matrix_diag = _unary("MatrixDiag")
matrix_diag_part = _unary("MatrixDiagPart")


def matrix_solve(matrix, rhs, adjoint=False, name=None):
    matrix = convert_to_tensor(matrix)
    return apply_op("MatrixSolve", (matrix, convert_to_tensor(rhs, matrix.dtype)), {"adjoint": bool(adjoint)},
                    name or "MatrixSolve").outputs[0]


def matrix_set_diag(input, diagonal, name=None):  # noqa: A002 - TF's argument name
    x = convert_to_tensor(input)
    return apply_op("MatrixSetDiag", (x, convert_to_tensor(diagonal, x.dtype)), {}, name or "MatrixSetDiag").outputs[0]


def matrix_band_part(input, num_lower, num_upper, name=None):  # noqa: A002
    return apply_op("MatrixBandPart", (convert_to_tensor(input),), {"num_lower": int(num_lower),
                                                                    "num_upper": int(num_upper)},
                    name or "MatrixBandPart").outputs[0]


def matrix_transpose(a, name="matrix_transpose", conjugate=False):
    return apply_op("MatrixTranspose", (convert_to_tensor(a),), {}, name).outputs[0]


def self_adjoint_eig(tensor, name=None):
    """(eigenvalues ascending, eigenvectors as columns) of symmetric matrices."""
    return tuple(apply_op("SelfAdjointEigV2", (convert_to_tensor(tensor),), {"compute_v": True},
                          name or "SelfAdjointEigV2").outputs)


def self_adjoint_eigvals(tensor, name=None):
    return apply_op("SelfAdjointEigV2", (convert_to_tensor(tensor),), {"compute_v": False},
                    name or "SelfAdjointEigV2").outputs[0]


def svd(tensor, full_matrices=False, compute_uv=True, name=None):
    """s, or (s, u, v) with tensor = u diag(s) v^T (TF's order and v, not v^T)."""
    outputs = apply_op("Svd", (convert_to_tensor(tensor),), {"full_matrices": bool(full_matrices),
                                                             "compute_uv": bool(compute_uv)}, name or "Svd").outputs
    return tuple(outputs) if compute_uv else outputs[0]


def trace(x, name=None):
    with name_scope(name, "Trace") as scope:
        return emit("Sum", matrix_diag_part(x), axis=(-1,), keepdims=False, name=scope)


def eye(num_rows, num_columns=None, batch_shape=None, dtype=dtypes.float32, name=None):
    """An identity matrix (or a batch of them) as a constant; sizes are Python ints."""
    dtype = dtypes.as_dtype(dtype)
    matrix = np.eye(int(num_rows), None if num_columns is None else int(num_columns), dtype=dtype.np)
    if batch_shape is not None:
        matrix = np.broadcast_to(matrix, tuple(int(d) for d in batch_shape) + matrix.shape)
    return convert_to_tensor(matrix, name=name or "eye")


def norm(tensor, ord="euclidean", axis=None, keepdims=None, name=None):  # noqa: A002 - TF's argument name
    """tf.norm: 'euclidean'/'fro' (2-norm of the flattened axes), or a vector p-norm (1, 2, inf, any p > 0)
    over one axis; the matrix operator norms (ord 1/2/inf over two axes) are not supported."""
    with name_scope(name, "norm") as scope:
        x = convert_to_tensor(tensor)
        axes = None if axis is None else tuple(int(a) for a in np.atleast_1d(axis))
        keep = bool(keepdims)
        if ord in ("euclidean", "fro") or (ord == 2 and axes is not None and len(axes) == 1):
            if ord == "fro" and axes is not None and len(axes) != 2:
                raise ValueError("'fro' needs two axes")
            return emit("Sqrt", emit("Sum", emit("Square", x), axis=axes, keepdims=keep), name=scope)
        if axes is not None and len(axes) != 1 or axes is None and x._shape is not None and len(x._shape) != 1:
            raise ValueError(f"norm: ord={ord!r} is supported for vectors (one axis) only")
        magnitude = emit("Abs", x)
        if ord == np.inf:
            return emit("Max", magnitude, axis=axes, keepdims=keep, name=scope)
        if ord == 1:
            return emit("Sum", magnitude, axis=axes, keepdims=keep, name=scope)
        if not isinstance(ord, (int, float)) or ord <= 0:
            raise ValueError(f"norm: ord must be 'euclidean', 'fro', or a positive number, got {ord!r}")
        power = np.asarray(ord, dtype=x.dtype.np)
        total = emit("Sum", emit("Pow", magnitude, power), axis=axes, keepdims=keep)
        return emit("Pow", total, np.asarray(1 / ord, dtype=x.dtype.np), name=scope)


def adjoint(matrix, name=None):
    """The conjugate transpose of the last two axes (real tensors: their transpose)."""
    return matrix_transpose(matrix, name=name or "adjoint")


def matvec(a, b, transpose_a=False, adjoint_a=False, name=None):
    """a [..., m, n] times vectors b [..., n] -> [..., m]."""
    with name_scope(name, "MatVec") as scope:
        a = convert_to_tensor(a)
        column = emit("ExpandDims", convert_to_tensor(b, a.dtype), axis=-1)
        return emit("Squeeze", emit("MatMul", a, column, transpose_a=bool(transpose_a or adjoint_a),
                                    transpose_b=False), axis=(-1,), name=scope)


def logdet(matrix, name=None):
    """log(det(matrix)) of symmetric positive definite matrices, through their Cholesky factor."""
    with name_scope(name, "logdet") as scope:
        diagonal = emit("MatrixDiagPart", emit("Cholesky", convert_to_tensor(matrix)))
        return emit("Mul", np.asarray(2.0, diagonal.dtype.np), emit("Sum", emit("Log", diagonal), axis=(-1,),
                                                                     keepdims=False), name=scope)
