"""Ops that gradient rules build: undoing a broadcast and the gradient of a product (the other gradient
ops now live beside the ops they differentiate).

Each is an ordinary op (shape rule, dtype rule, kernel on `ctx.xp`), so gradient graphs compile, fold
and run like any other graph, on the CPU or the GPU backend.
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.ir import ShapeAttr
from graphexec.framework import Tensor, apply_op
from graphexec.ops import rules
from graphexec.ops.registry import NOT_DIFFERENTIABLE, op


def _host_ints(ctx, array) -> tuple:
    return tuple(int(v) for v in np.asarray(ctx.to_host(array)).reshape(-1))


# -- SumToShape: the adjoint of broadcasting ---------------------------------------------------------
def summed_axes(grad_shape: tuple, target: tuple) -> tuple:
    """Axes of `grad_shape` to sum so that it becomes `target` (leading extra axes, and 1-dims of target)."""
    lead = len(grad_shape) - len(target)
    return tuple(range(lead)) + tuple(lead + i for i, d in enumerate(target) if d == 1 and grad_shape[lead + i] != 1)


def _sum_to_shape(ctx, grad, shape, static_shape):
    target = _host_ints(ctx, shape)
    if tuple(grad.shape) == target:
        return grad
    axes = summed_axes(tuple(grad.shape), target)
    return ctx.xp.sum(grad, axis=axes).reshape(target) if axes else grad.reshape(target)


def _sum_to_shape_grad(op, dy):
    from graphexec.ops.array_ops import shape
    from graphexec.ops.array_ops import broadcast_to

    return [broadcast_to(dy, shape(op.inputs[0])), None]


SumToShape = op("SumToShape", shape=lambda args, attrs: attrs["static_shape"].dims,
                dtype=lambda args, attrs: args[0].dtype, kernel=_sum_to_shape, grad=_sum_to_shape_grad)


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


# -- ProdGrad: product of all the other elements along the reduced axes ------------------------------------
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


ProdOfOthers = op("ProdOfOthers", shape=rules.unchanged, dtype=rules.same_dtype(*dtypes.NUMERIC),
                  kernel=_prod_of_others, grad=NOT_DIFFERENTIABLE)


def prod_of_others(x: Tensor, axis) -> Tensor:
    return apply_op("ProdOfOthers", (x,), {"axis": axis}, "ProdOfOthers").outputs[0]
