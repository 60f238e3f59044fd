"""Ops that gradient rules build: undoing a broadcast, scattering a slice's gradient back into zeros,
the gradient of a product, and the segment sum that undoes a gather.

Each is an ordinary op (shape rule, dtype rule, kernel on `ctx.xp`), so gradient graphs compile, fold
and run like any other graph, on the CPU or the GPU backend.
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.ir import ShapeAttr
from graphexec.framework import Tensor, apply_op
from graphexec.ops import rules
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, op


def _host_ints(ctx, array) -> tuple:
    return tuple(int(v) for v in np.asarray(ctx.to_host(array)).reshape(-1))


# -- SumToShape (declared in graphexec.ops.math_ops): the adjoint of broadcasting --------------------
def sum_to_shape(grad: Tensor | None, like: Tensor) -> Tensor | None:
    """`grad` (of a value `like` was broadcast into) summed back to the shape of `like`."""
    if grad is None:
        return None
    from graphexec.ops.array_ops import shape
    from graphexec.ops.convert import constant

    known = like._shape is not None and None not in like._shape
    if known and grad._shape == like._shape:
        return grad
    target = constant(np.asarray(like._shape, np.int32)) if known else shape(like)
    return apply_op("SumToShape", (grad, target), {"static_shape": ShapeAttr(like._shape)}, "SumToShape").outputs[0]


# -- StridedSliceGrad: a slice's gradient placed into zeros of the input's shape ------------------------
def _strided_slice_grad(ctx, shape, grad, **spec):
    from graphexec.ops.array_ops import _index

    out = ctx.xp.zeros(_host_ints(ctx, shape), dtype=grad.dtype)
    out[_index(**spec)] = grad
    return out


def _strided_slice_grad_shape(args, attrs):
    shape_arg = args[0]
    if shape_arg.value is not None:
        return tuple(int(d) for d in shape_arg.value)
    return None if shape_arg.shape is None or shape_arg.shape[0] is None else (None,) * shape_arg.shape[0]


def _strided_slice_grad_grad(op, dy):
    return [None, apply_op("StridedSlice", (dy,), dict(op.attrs), "StridedSlice").outputs[0]]


StridedSliceGrad = op("StridedSliceGrad", shape=_strided_slice_grad_shape, dtype=lambda args, attrs: args[1].dtype,
                      kernel=_strided_slice_grad, grad=_strided_slice_grad_grad)


# -- ProdOfOthers (declared in graphexec.ops.math_ops) ------------------------------------------------
def prod_of_others(x: Tensor, axis) -> Tensor:
    return apply_op("ProdOfOthers", (x,), {"axis": axis}, "ProdOfOthers").outputs[0]


# -- UnsortedSegmentSum: the adjoint of gather --------------------------------------------------------------
def _segment_sum_shape(args, attrs):
    data, ids, num = args
    if num.value is None or data.shape is None or ids.shape is None:
        return None
    if data.shape[:len(ids.shape)] != ids.shape and None not in data.shape[:len(ids.shape)] + ids.shape:
        raise ShapeError(f"segment_ids shape {rules.fmt(ids.shape)} must be a prefix of data shape "
                         f"{rules.fmt(data.shape)}")
    return (int(num.value),) + data.shape[len(ids.shape):]


def _segment_sum(ctx, data, segment_ids, num_segments):
    xp = ctx.xp
    tail = data.shape[segment_ids.ndim:]
    out = xp.zeros((int(num_segments),) + tuple(tail), dtype=data.dtype)
    xp.add.at(out, segment_ids.reshape(-1), data.reshape((-1,) + tuple(tail)))
    return out


def _segment_sum_grad(op, dy):
    from graphexec.ops.array_ops_extra import gather

    return [gather(dy, op.inputs[1]), None, None]


UnsortedSegmentSum = op("UnsortedSegmentSum", shape=_segment_sum_shape, dtype=lambda args, attrs: args[0].dtype,
                        kernel=_segment_sum, grad=_segment_sum_grad)


def unsorted_segment_sum(data, segment_ids, num_segments, name=None) -> Tensor:
    from graphexec.ops.convert import convert_to_tensor

    num = num_segments if isinstance(num_segments, Tensor) else convert_to_tensor(num_segments, dtypes.int32)
    return apply_op("UnsortedSegmentSum", (convert_to_tensor(data), convert_to_tensor(segment_ids), num), {},
                    name or "UnsortedSegmentSum").outputs[0]


# -- MirrorPadGrad: the reflected borders folded back onto the elements they copy ------------------------
def _along(axis: int, index) -> tuple:
    return (slice(None),) * axis + (index,)


def _mirror_pad_grad(ctx, grad, paddings, mode):
    xp = ctx.xp
    offset = 1 if mode == "REFLECT" else 0  # REFLECT skips the edge element, SYMMETRIC repeats it
    for axis, (before, after) in enumerate(np.asarray(ctx.to_host(paddings)).tolist()):
        n = grad.shape[axis] - before - after
        core = grad[_along(axis, slice(before, before + n))].copy()
        if before:
            core[_along(axis, slice(offset, offset + before))] += xp.flip(grad[_along(axis, slice(0, before))], axis)
        if after:
            core[_along(axis, slice(n - offset - after, n - offset))] += xp.flip(
                grad[_along(axis, slice(before + n, None))], axis)
        grad = core
    return grad


def _mirror_pad_grad_shape(args, attrs):
    grad, paddings = args
    if grad.shape is None:
        return None
    if paddings.value is None:
        return (None,) * len(grad.shape)
    return tuple(None if d is None else d - int(b) - int(a) for d, (b, a) in zip(grad.shape, paddings.value))


MirrorPadGrad = op("MirrorPadGrad", shape=_mirror_pad_grad_shape, dtype=lambda args, attrs: args[0].dtype,
                   kernel=_mirror_pad_grad,
                   grad=lambda op, g: [apply_op("MirrorPad", (g, op.inputs[1]), dict(op.attrs)).outputs[0], None])
