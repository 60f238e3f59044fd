"""Reductions (sum, mean, max, min, prod, any, all) and arg-max/arg-min, with their gradients.

Part of the math family: `graphexec.ops.math_ops` re-exports this module's Python API. Elementwise ops
(Mul, Cast, Select...) are built by name (emit), so this module sits below math_ops and imports no other
op module but the schema core.
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.dtypes import NUMERIC
from graphexec.framework import Tensor, apply_op
from graphexec.ir import num_elements
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.emit import dynamic_shape, emit
from graphexec.ops.registry import NOT_DIFFERENTIABLE, attr, op

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["argmax", "argmin", "reduce_all", "reduce_any", "reduce_max", "reduce_mean", "reduce_min", "reduce_prod",
           "reduce_sum"]


# -- gradient rules: grad(op, dy) -> one gradient (or None) per input; see graphexec.gradients ---------
def _keepdims(t, op):
    """A reduction's output (or its gradient) with the reduced axes put back as 1s, so it broadcasts
    against the input (a full reduction's scalar broadcasts as it is)."""
    attrs = op.attrs
    axis = attrs["axis"]
    if attrs["keepdims"] or axis is None:
        return t
    shape = op.inputs[0]._shape
    if shape is None:
        return emit("Reshape", t, _reduced_shape(op.inputs[0], axis))
    for a in sorted(a % len(shape) for a in axis):
        t = emit("ExpandDims", t, axis=a)
    return t


def _reduced_shape(x, axis):
    """x's shape with 1s at the reduced axes, computed at run time (for inputs of unknown rank)."""
    dims, x_rank = dynamic_shape(x), emit("Rank", x)
    axes = emit("FloorMod", np.asarray(axis, np.int32), x_rank)
    positions = emit("Range", np.int32(0), x_rank, np.int32(1))
    matches = emit("Equal", emit("ExpandDims", positions, axis=1), emit("ExpandDims", axes, axis=0))
    reduced = reduce_any(matches, axis=1)
    return emit("Select", reduced, emit("OnesLike", dims), dims)


def _sum_grad(op, dz):
    return [emit("BroadcastTo", _keepdims(dz, op), dynamic_shape(op.inputs[0]))]


def _mean_grad(op, dz):
    x, z = op.inputs[0], op.outputs[0]
    (dx,) = _sum_grad(op, dz)
    n_in, n_out = num_elements(x._shape), num_elements(z._shape)
    if n_in is not None and n_out is not None:
        return [emit("RealDiv", dx, np.asarray(n_in // max(n_out, 1), x.dtype.np))]
    n_in = emit("Cast", emit("Size", x, out_type=dtypes.int32), DstT=x.dtype)
    n_out = emit("Cast", emit("Maximum", emit("Size", z, out_type=dtypes.int32), np.int32(1)), DstT=x.dtype)
    return [emit("RealDiv", dx, emit("RealDiv", n_in, n_out))]


def _extremum_grad(op, dz):
    """max/min: the gradient is shared equally among the elements that attain the extremum."""
    x = op.inputs[0]
    hit = emit("Cast", emit("Equal", x, _keepdims(op.outputs[0], op)), DstT=x.dtype)
    count = reduce_sum(hit, axis=op.attrs["axis"], keepdims=True)
    return [emit("Mul", emit("RealDiv", hit, count), _keepdims(dz, op))]


def _prod_grad(op, dz):
    return [emit("Mul", _keepdims(dz, op), prod_of_others(op.inputs[0], op.attrs["axis"]))]



def _reduce_shape(args, attrs):
    shape, axis, keep = args[0].shape, attrs["axis"], attrs["keepdims"]
    if shape is None:
        return None
    if axis is None:
        return (1,) * len(shape) if keep else ()
    axes = {rules.normalize_axis(a, len(shape)) for a in axis}
    if keep:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


REDUCTION_ATTRS = {"axis": attr("list(int)", None), "keepdims": attr("bool", False)}  # axis None: every axis


def reduction(name, kernel, allowed=NUMERIC, grad=None):
    return op(name, shape=_reduce_shape, dtype=rules.same_dtype(*allowed), kernel=kernel, grad=grad,
              inputs=("input",), attrs=REDUCTION_ATTRS)


def summed(xp, x, axis, keepdims=False):
    """xp.sum(x, axis, keepdims); on numpy the ufunc's reduce that np.sum calls, without its Python wrapper
    (~3-10 us of a small kernel such as W3's [128, 10] cross-entropy): the same bits."""
    return np.add.reduce(x, axis=axis, keepdims=keepdims) if xp is np else xp.sum(x, axis=axis, keepdims=keepdims)


def largest(xp, x, axis, keepdims=False):
    """xp.max(x, axis, keepdims), as `summed` (np.maximum.reduce on numpy)."""
    return np.maximum.reduce(x, axis=axis, keepdims=keepdims) if xp is np else xp.max(x, axis=axis, keepdims=keepdims)


def _mean(ctx, x, axis, keepdims):
    if x.dtype.kind in "iu":  # TF's integer mean truncates toward zero
        return ctx.xp.trunc(ctx.xp.mean(x, axis=axis, keepdims=keepdims)).astype(x.dtype)
    if ctx.xp is np and x.dtype.char in "fd" and x.size:
        # What np.mean computes for these dtypes (the sum in the dtype, divided by the count), without its
        # Python layers (~5 us of W3's loss, a mean of 128 values).
        total = summed(np, x, axis, keepdims)
        count = x.size // max(total.size, 1)
        return np.true_divide(total, count, out=total) if type(total) is np.ndarray else total.dtype.type(total / count)
    return ctx.xp.mean(x, axis=axis, keepdims=keepdims).astype(x.dtype, copy=False)


def _reducer(fn_name):
    def kernel(ctx, x, axis, keepdims):
        return ctx.xp.asarray(getattr(ctx.xp, fn_name)(x, axis=axis, keepdims=keepdims), dtype=x.dtype)

    return kernel


Sum = reduction("Sum", _reducer("sum"), grad=_sum_grad)
Mean = reduction("Mean", _mean, grad=_mean_grad)
Max = reduction("Max", _reducer("max"), grad=_extremum_grad)
Min = reduction("Min", _reducer("min"), grad=_extremum_grad)
Prod = reduction("Prod", _reducer("prod"), grad=_prod_grad)
Any = reduction("Any", _reducer("any"), allowed=(dtypes.bool,), grad=NOT_DIFFERENTIABLE)
All = reduction("All", _reducer("all"), allowed=(dtypes.bool,), grad=NOT_DIFFERENTIABLE)


def _arg_shape(args, attrs):
    shape = args[0].shape
    if shape is None:
        return None
    axis = rules.normalize_axis(attrs["axis"], len(shape))
    return shape[:axis] + shape[axis + 1:]


def _argmax(ctx, x, axis, output_type):
    return ctx.xp.argmax(x, axis=axis).astype(output_type.np)


def _argmin(ctx, x, axis, output_type):
    return ctx.xp.argmin(x, axis=axis).astype(output_type.np)


ARG_ATTRS = {"axis": attr("int", 0), "output_type": attr("type", dtypes.int64)}
ArgMax = op("ArgMax", shape=_arg_shape, dtype=rules.attr_dtype("output_type"), kernel=_argmax,
            grad=NOT_DIFFERENTIABLE, inputs=("input",), attrs=ARG_ATTRS)
ArgMin = op("ArgMin", shape=_arg_shape, dtype=rules.attr_dtype("output_type"), kernel=_argmin,
            grad=NOT_DIFFERENTIABLE, inputs=("input",), attrs=ARG_ATTRS)



# -- ProdOfOthers: the gradient of a product -----------------------------------------------------
def _prod_of_others(ctx, x, axis):
    """For each element, the product of the other elements in its reduction group (exact with zeros)."""
    xp = ctx.xp
    axes = tuple(range(x.ndim)) if axis is None else tuple(a % x.ndim for a in axis)
    kept = tuple(a for a in range(x.ndim) if a not in axes)
    moved = xp.transpose(x, kept + axes)
    flat = moved.reshape(moved.shape[:len(kept)] + (-1,))
    ones = xp.ones(flat.shape[:-1] + (1,), dtype=x.dtype)
    before = xp.cumprod(xp.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    after = xp.flip(xp.cumprod(xp.flip(xp.concatenate([flat[..., 1:], ones], axis=-1), -1), axis=-1), -1)
    others = (before * after).reshape(moved.shape)
    return xp.transpose(others, np.argsort(kept + axes))


ProdOfOthers = op("ProdOfOthers", shape=rules.unchanged, dtype=rules.same_dtype(*NUMERIC),
                  kernel=_prod_of_others, grad=NOT_DIFFERENTIABLE,
                  inputs=("x",), attrs={"axis": attr("list(int)", None)})


def prod_of_others(x: Tensor, axis) -> Tensor:
    return apply_op("ProdOfOthers", (x,), {"axis": axis}, "ProdOfOthers").outputs[0]



# -- Python API ---------------------------------------------------------------------------------
def _axis_attr(axis):
    if axis is None:
        return None
    if hasattr(axis, "op"):
        raise TypeError("reduction axes must be Python ints (tensor-valued axes are not supported)")
    return tuple(int(a) for a in (axis if isinstance(axis, (list, tuple, np.ndarray)) else [axis]))


def _reduce_api(op_type, bool_input=False):
    """tf.reduce_*: the op's default node name is its type, as in TF."""
    def fn(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None, keep_dims=None):
        x = convert_to_tensor(input_tensor, dtype=dtypes.bool if bool_input else None)
        axis = reduction_indices if axis is None else axis
        keep = bool(keep_dims if keepdims is None else keepdims)
        return apply_op(op_type, (x,), {"axis": _axis_attr(axis), "keepdims": keep}, name or op_type).outputs[0]

    fn.__name__ = op_type
    return fn


reduce_sum = _reduce_api("Sum")
reduce_mean = _reduce_api("Mean")
reduce_max = _reduce_api("Max")
reduce_min = _reduce_api("Min")
reduce_prod = _reduce_api("Prod")
reduce_any = _reduce_api("Any", bool_input=True)
reduce_all = _reduce_api("All", bool_input=True)


def _arg_api(op_type, default_name):
    def fn(input, axis=None, name=None, dimension=None, output_type=dtypes.int64):  # noqa: A002
        axis = dimension if axis is None else axis
        attrs = {"axis": 0 if axis is None else int(axis), "output_type": dtypes.as_dtype(output_type)}
        return apply_op(op_type, (convert_to_tensor(input),), attrs, name or default_name).outputs[0]

    fn.__name__ = default_name
    return fn


argmax = _arg_api("ArgMax", "ArgMax")
argmin = _arg_api("ArgMin", "ArgMin")
