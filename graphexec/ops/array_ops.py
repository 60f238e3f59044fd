"""Creation and shape ops: placeholders, identity, shape queries, reshape and dimension shuffles,
fill/zeros/ones(_like), range/linspace, tile and broadcast_to.

As in TF, arguments that decide an output shape (dims, multiples, the target of broadcast_to) are
graph inputs; shape rules read their build-time value when it is known (see shape_inputs).
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from graphexec import dtypes
from graphexec.framework import Tensor, apply_op, name_scope
from graphexec.ir import ShapeAttr, num_elements
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor, shape_attr
from graphexec.ops.emit import emit
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.ops.shape_inputs import (INDEX_TYPES, check_index_dtype, dims_shape, host_ints, int_array,
                                        int_tensor, is_tensorlike, rank_of, scalar_value, shape_of, vector_length, vector_value,
                                        with_known_elements)

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["broadcast_to", "expand_dims", "fill", "identity", "linspace", "ones", "ones_like", "placeholder",
           "placeholder_with_default", "range", "rank", "reshape", "shape", "size", "squeeze", "stop_gradient",
           "tile", "transpose", "zeros", "zeros_like"]


# -- placeholders, identity ---------------------------------------------------------------------
def _not_fed(ctx, **attrs):
    raise AssertionError("placeholders are bound to feeds by the compiler")


def _with_default_shape(args, attrs):
    declared = attrs["shape"].dims
    given = args[0].shape
    if declared is not None and given is not None:
        if len(declared) != len(given) or any(d is not None and g is not None and d != g
                                              for d, g in zip(declared, given)):
            raise ShapeError(f"default value of shape {rules.fmt(given)} does not match shape {rules.fmt(declared)}")
    return declared


Placeholder = op("Placeholder", shape=lambda args, attrs: attrs["shape"].dims, dtype=rules.attr_dtype(),
                 kernel=_not_fed, grad=NOT_DIFFERENTIABLE, is_placeholder=True,
                 inputs=(), attrs={"dtype": attr("type"), "shape": attr("shape", ShapeAttr(None))})
PlaceholderWithDefault = op("PlaceholderWithDefault", shape=_with_default_shape, dtype=rules.same_dtype(),
                            kernel=lambda ctx, x, shape: x, grad=lambda op, dy: [dy],
                            inputs=("input",), attrs={"shape": attr("shape")})
Identity = op("Identity", shape=rules.unchanged, dtype=rules.same_dtype(), kernel=lambda ctx, x: x,
              grad=lambda op, dy: [dy], inputs=("input",))
StopGradient = op("StopGradient", shape=rules.unchanged, dtype=rules.same_dtype(), kernel=lambda ctx, x: x,
                  grad=lambda op, dy: [None], inputs=("input",))  # the gradient stops here by definition


def placeholder(dtype, shape=None, name=None):
    dtype = dtypes.as_dtype(dtype)
    return apply_op("Placeholder", (), {"dtype": dtype, "shape": shape_attr(shape)}, name or "Placeholder").outputs[0]


def placeholder_with_default(input, shape, name=None):  # noqa: A002 - TF's argument name
    x = convert_to_tensor(input)
    return apply_op("PlaceholderWithDefault", (x,), {"shape": shape_attr(shape)}, name).outputs[0]


def identity(input, name=None):  # noqa: A002
    return apply_op("Identity", (convert_to_tensor(input),), {}, name).outputs[0]


def stop_gradient(input, name=None):  # noqa: A002
    return apply_op("StopGradient", (convert_to_tensor(input),), {}, name).outputs[0]


# -- shape queries ------------------------------------------------------------------------------
def _shape_value(args, attrs):
    shape = args[0].shape
    if shape is None or None in shape:
        return None
    return np.array(shape, dtype=attrs["out_type"].np)


_OUT_TYPE = {"out_type": attr("type", dtypes.int32)}
Shape = op("Shape", shape=lambda args, attrs: (args[0].rank,), dtype=rules.attr_dtype("out_type"),
           kernel=lambda ctx, x, out_type: ctx.xp.asarray(x.shape, dtype=out_type.np),
           grad=NOT_DIFFERENTIABLE, const_value=_shape_value, inputs=("input",), attrs=_OUT_TYPE)
Size = op("Size", shape=rules.scalar, dtype=rules.attr_dtype("out_type"),
          kernel=lambda ctx, x, out_type: ctx.xp.asarray(x.size, dtype=out_type.np), grad=NOT_DIFFERENTIABLE,
          const_value=lambda args, attrs: None if num_elements(args[0].shape) is None
          else np.asarray(num_elements(args[0].shape), attrs["out_type"].np), inputs=("input",), attrs=_OUT_TYPE)
Rank = op("Rank", shape=rules.scalar, dtype=lambda args, attrs: dtypes.int32,
          kernel=lambda ctx, x: ctx.xp.asarray(x.ndim, dtype=np.int32), grad=NOT_DIFFERENTIABLE, inputs=("input",),
          const_value=lambda args, attrs: None if args[0].rank is None else np.asarray(args[0].rank, np.int32))


def shape(input, name=None, out_type=dtypes.int32):  # noqa: A002
    return apply_op("Shape", (convert_to_tensor(input),), {"out_type": dtypes.as_dtype(out_type)}, name).outputs[0]


def size(input, name=None, out_type=dtypes.int32):  # noqa: A002
    return apply_op("Size", (convert_to_tensor(input),), {"out_type": dtypes.as_dtype(out_type)}, name).outputs[0]


def rank(input, name=None):  # noqa: A002
    return apply_op("Rank", (convert_to_tensor(input),), {}, name).outputs[0]


# -- reshape ------------------------------------------------------------------------------------
def _reshape_shape(args, attrs):
    x, target = args
    if target.rank is not None and target.rank != 1:
        raise ShapeError(f"shape must be a vector, got rank {target.rank}")
    if target.value is None:
        return None if target.shape is None or target.shape[0] is None else (None,) * target.shape[0]
    dims = [int(d) for d in target.value]
    if sum(d == -1 for d in dims) > 1:
        raise ShapeError(f"only one dimension of the new shape can be -1, got {dims}")
    if any(d < -1 for d in dims):
        raise ShapeError(f"invalid dimension in new shape {dims}")
    total = num_elements(x.shape)
    known = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
    if -1 in dims:
        if total is None:
            return tuple(None if d == -1 else d for d in dims)
        if known == 0 or total % known:
            raise ShapeError(f"cannot reshape a tensor with {total} elements to shape {dims}")
        return tuple(total // known if d == -1 else d for d in dims)
    if total is not None and total != known:
        raise ShapeError(f"cannot reshape a tensor with {total} elements to shape {dims} ({known} elements)")
    return tuple(dims)


def _reshape_back(op, dy):
    """Gradient of shape-only changes (reshape, expand_dims, squeeze): dy in the input's shape."""
    return [reshape(dy, shape_of(op.inputs[0]))] + [None] * (len(op.inputs) - 1)


Reshape = op("Reshape", shape=_reshape_shape, dtype=lambda args, attrs: args[0].dtype, grad=_reshape_back,
             kernel=lambda ctx, x, target: x.reshape(tuple(int(d) for d in target)), inputs=("tensor", "shape"))


def reshape(tensor, shape, name=None):
    if isinstance(shape, Tensor) or is_tensorlike(shape) or (
            isinstance(shape, (list, tuple)) and any(is_tensorlike(d) for d in shape)):
        target = shape if isinstance(shape, Tensor) else convert_to_tensor(shape, dtype=dtypes.int32)
    else:  # numbers: int64 when they need it; a huge Python int is an error, not wrapped to int32
        target = convert_to_tensor(int_array(shape, "shape"))
    return apply_op("Reshape", (convert_to_tensor(tensor), target), {}, name).outputs[0]


# -- dimension shuffles ------------------------------------------------------------------------
def _expand_dims_shape(args, attrs):
    shape = args[0].shape
    if shape is None:
        return None
    axis = rules.normalize_axis(attrs["axis"], len(shape) + 1)
    return shape[:axis] + (1,) + shape[axis:]


ExpandDims = op("ExpandDims", shape=_expand_dims_shape, dtype=rules.same_dtype(), grad=_reshape_back,
                kernel=lambda ctx, x, axis: ctx.xp.expand_dims(x, axis), inputs=("input",),
                attrs={"axis": attr("int")})


def expand_dims(input, axis=None, name=None, dim=None):  # noqa: A002
    axis = dim if axis is None else axis
    return apply_op("ExpandDims", (convert_to_tensor(input),), {"axis": int(axis)}, name).outputs[0]


def _squeeze_shape(args, attrs):
    shape = args[0].shape
    if shape is None:
        return None
    axes = attrs["axis"]
    if axes is None:
        if None in shape:
            return None
        return tuple(d for d in shape if d != 1)
    axes = {rules.normalize_axis(a, len(shape)) for a in axes}
    for a in axes:
        if shape[a] not in (1, None):
            raise ShapeError(f"can not squeeze dim[{a}], expected a dimension of 1, got {shape[a]}")
    return tuple(d for i, d in enumerate(shape) if i not in axes)


Squeeze = op("Squeeze", shape=_squeeze_shape, dtype=rules.same_dtype(), grad=_reshape_back,
             kernel=lambda ctx, x, axis: ctx.xp.squeeze(x, axis=axis), inputs=("input",),
             attrs={"axis": attr("list(int)", None)})  # None: every dim of size 1


def squeeze(input, axis=None, name=None, squeeze_dims=None):  # noqa: A002
    axis = squeeze_dims if axis is None else axis
    if isinstance(axis, int):
        axis = (axis,)
    attrs = {"axis": None if axis is None else tuple(int(a) for a in axis)}
    return apply_op("Squeeze", (convert_to_tensor(input),), attrs, name).outputs[0]


def _transpose_shape(args, attrs):
    shape, perm = args[0].shape, attrs["perm"]
    if shape is None:
        return None if perm is None else (None,) * len(perm)
    if perm is None:
        return shape[::-1]
    if sorted(perm) != list(builtins.range(len(shape))):
        raise ShapeError(f"perm {list(perm)} is not a permutation of the {len(shape)} dimensions")
    return tuple(shape[p] for p in perm)


def _transpose_grad(op, dy):
    perm = op.attrs["perm"]
    return [transpose(dy, None if perm is None else tuple(int(p) for p in np.argsort(perm)))]


Transpose = op("Transpose", shape=_transpose_shape, dtype=rules.same_dtype(), grad=_transpose_grad,
               kernel=lambda ctx, x, perm: ctx.xp.transpose(x, perm), inputs=("x",),
               attrs={"perm": attr("list(int)", None)})  # None: reversed dims


def transpose(a, perm=None, name="transpose"):
    attrs = {"perm": None if perm is None else tuple(int(p) for p in perm)}
    return apply_op("Transpose", (convert_to_tensor(a),), attrs, name).outputs[0]


# -- Fill, ZerosLike, OnesLike -----------------------------------------------------------------------
def _fill_shape(args, attrs):
    dims, value = args
    check_index_dtype(dims, "dims")
    scalar_value(value, "value")
    return dims_shape(dims)


def _fill(ctx, dims, value):
    return ctx.xp.full(host_ints(ctx, dims), value, dtype=value.dtype)


def _value_independent(op, *dzs):
    """zeros_like/ones_like: the output does not depend on the input's values."""
    return [None] * len(op.inputs)


Fill = op("Fill", shape=_fill_shape, dtype=lambda args, attrs: args[1].dtype, kernel=_fill, inputs=("dims", "value"),
          grad=lambda op, dz: [None, emit("Sum", dz, axis=None, keepdims=False)])
def _zeros_like(ctx, x):
    if x.dtype == object:  # tf.string: the empty string is its zero, as in TF
        return np.full(x.shape, b"", dtype=object)
    return ctx.xp.zeros_like(x)


ZerosLike = op("ZerosLike", shape=rules.unchanged, dtype=rules.same_dtype(), grad=_value_independent,
               kernel=_zeros_like, inputs=("x",))
OnesLike = op("OnesLike", shape=rules.unchanged, dtype=rules.same_dtype(*(d for d in dtypes.ALL if not d.is_string)),
              grad=_value_independent,
              kernel=lambda ctx, x: ctx.xp.ones_like(x), inputs=("x",))


def fill(dims, value, name=None):
    with name_scope(name, "Fill") as scope:
        dims = int_tensor(dims, "dims")
        return with_known_elements(apply_op("Fill", (dims, convert_to_tensor(value)), {}, scope).outputs[0], dims)


def _filled(shape, value, dtype, name, default_name):
    dtype = dtypes.as_dtype(dtype)
    with name_scope(name, default_name) as scope:
        dims = int_tensor(shape, "shape_as_tensor")
        scalar = convert_to_tensor(np.asarray(value, dtype=dtype.np), name="Const")
        return with_known_elements(apply_op("Fill", (dims, scalar), {}, scope).outputs[0], dims)


def zeros(shape, dtype=dtypes.float32, name=None):
    return _filled(shape, 0, dtype, name, "zeros")


def ones(shape, dtype=dtypes.float32, name=None):
    return _filled(shape, 1, dtype, name, "ones")


def _like(op_type, fill_value, tensor, dtype, name, default_name):
    tensor = convert_to_tensor(tensor)
    if dtype is not None and dtypes.as_dtype(dtype) is not tensor.dtype:
        with name_scope(name, default_name) as scope:
            return _filled(shape(tensor), fill_value, dtype, scope, None)
    return apply_op(op_type, (tensor,), {}, name or default_name).outputs[0]


def zeros_like(tensor, dtype=None, name=None, optimize=True):
    return _like("ZerosLike", 0, tensor, dtype, name, "zeros_like")


def ones_like(tensor, dtype=None, name=None, optimize=True):
    return _like("OnesLike", 1, tensor, dtype, name, "ones_like")


# -- Range, LinSpace --------------------------------------------------------------------------------
def _range_size(start, limit, delta, np_dtype) -> int:
    """Number of elements of range(start, limit, delta), computed the way TF does for ints and floats."""
    if delta == 0:
        raise ShapeError("Requires delta != 0")
    if delta > 0 and start > limit:
        raise ShapeError(f"Requires start <= limit when delta > 0: {start}/{limit}")
    if delta < 0 and start < limit:
        raise ShapeError(f"Requires start >= limit when delta < 0: {start}/{limit}")
    if np.dtype(np_dtype).kind in "iu":
        return (abs(limit - start) + abs(delta) - 1) // abs(delta)
    span = np.asarray(limit, np_dtype) - np.asarray(start, np_dtype)
    return int(math.ceil(abs(float(span / np.asarray(delta, np_dtype)))))


def _range_shape(args, attrs):
    values = [scalar_value(a, what) for a, what in zip(args, ("start", "limit", "delta"))]
    if any(v is None for v in values):
        return (None,)
    return (_range_size(*values, args[0].dtype.np),)


def _range(ctx, start, limit, delta):
    dtype = start.dtype
    try:
        size = _range_size(start.item(), limit.item(), delta.item(), dtype)
    except ShapeError as exc:
        raise ValueError(str(exc)) from None
    return (start + ctx.xp.arange(size, dtype=dtype) * delta).astype(dtype, copy=False)


Range = op("Range", shape=_range_shape, dtype=rules.same_dtype(*(dtypes.FLOATING + INDEX_TYPES)), kernel=_range,
           grad=NOT_DIFFERENTIABLE, inputs=("start", "limit", "delta"))

_RANGE_HIERARCHY = (dtypes.int32, dtypes.int64, dtypes.float32, dtypes.float64)


def range(start, limit=None, delta=1, dtype=None, name="range"):  # noqa: A001 - TF's name
    """tf.range: like Python's range; the dtype is the widest of the arguments' unless given."""
    if limit is None:
        start, limit = 0, start
    with name_scope(name) as scope:
        args = [convert_to_tensor(v, name=n) for v, n in ((start, "start"), (limit, "limit"), (delta, "delta"))]
        if dtype is None:
            unknown = [a.dtype.name for a in args if a.dtype not in _RANGE_HIERARCHY]
            if unknown:
                raise TypeError(f"range arguments must be int32, int64, float32 or float64, got {unknown}")
            dtype = max((a.dtype for a in args), key=_RANGE_HIERARCHY.index)
        dtype = dtypes.as_dtype(dtype)
        args = [a if a.dtype is dtype else emit("Cast", a, DstT=dtype) for a in args]
        return apply_op("Range", args, {}, scope).outputs[0]


def _linspace_shape(args, attrs):
    start, stop, num = args
    for arg, what in ((start, "start"), (stop, "stop")):
        scalar_value(arg, what)
    check_index_dtype(num, "num")
    count = scalar_value(num, "num")
    if count is not None and count < 1:
        raise ShapeError(f"Requires num > 0: {count}")
    return (count,)


def _linspace(ctx, start, stop, num):
    count = int(num)
    if count < 1:
        raise ValueError(f"Requires num > 0: {count}")
    return ctx.xp.linspace(start.item(), stop.item(), count).astype(start.dtype, copy=False)


LinSpace = op("LinSpace", shape=_linspace_shape, kernel=_linspace, grad=NOT_DIFFERENTIABLE,
              dtype=lambda args, attrs: rules.same_dtype(*dtypes.FLOATING)(args[:2], attrs),
              inputs=("start", "stop", "num"))


def linspace(start, stop, num, name=None):
    with name_scope(name, "LinSpace") as scope:
        start = convert_to_tensor(start, name="start")
        stop = convert_to_tensor(stop, dtype=None if is_tensorlike(stop) else start.dtype, name="stop")
        return apply_op("LinSpace", (start, stop, int_tensor(num, "num")), {}, scope).outputs[0]


lin_space = linspace


# -- Tile, BroadcastTo ---------------------------------------------------------------------------------
def _tile_shape(args, attrs):
    x, multiples_arg = args
    check_index_dtype(multiples_arg, "multiples")
    rank = x.rank if x.rank is not None else vector_length(multiples_arg)
    multiples = vector_value(multiples_arg, "multiples", rank)
    if rank is None:
        return None
    if multiples is None:
        return (None,) * rank
    if any(m < 0 for m in multiples):
        raise ShapeError(f"multiples must be non-negative, got {multiples}")
    shape = x.shape if x.shape is not None else (None,) * rank
    return tuple(None if d is None else d * m for d, m in zip(shape, multiples))


def _tile_grad(op, dz):
    """dz as [m0, d0, m1, d1, ...] summed over the m axes."""
    x, multiples = op.inputs
    rank = rank_of(op, x)
    if multiples.dtype is not dtypes.int32:
        multiples = emit("Cast", multiples, DstT=dtypes.int32)
    interleaved = reshape(transpose(emit("Pack", multiples, shape_of(x), axis=0)), [-1])
    return [emit("Sum", reshape(dz, interleaved), axis=tuple(builtins.range(0, 2 * rank, 2)), keepdims=False), None]


Tile = op("Tile", shape=_tile_shape, dtype=lambda args, attrs: args[0].dtype, grad=_tile_grad,
          kernel=lambda ctx, x, multiples: ctx.xp.tile(x, host_ints(ctx, multiples)), inputs=("input", "multiples"))


def tile(input, multiples, name=None):  # noqa: A002 - TF's name
    x = convert_to_tensor(input)
    with name_scope(name, "Tile") as scope:
        return apply_op("Tile", (x, int_tensor(multiples, "multiples")), {}, scope).outputs[0]


def _broadcast_to_shape(args, attrs):
    x, shape_arg = args
    check_index_dtype(shape_arg, "shape")
    target = dims_shape(shape_arg, "shape")
    if target is None or x.shape is None:
        return target
    if len(x.shape) > len(target):
        raise ShapeError(f"cannot broadcast a tensor of shape {rules.fmt(x.shape)} to the lower-rank shape "
                         f"{rules.fmt(target)}")
    for d, t in zip(x.shape[::-1], target[::-1]):
        if d is not None and t is not None and d not in (1, t):
            raise ShapeError(f"cannot broadcast a tensor of shape {rules.fmt(x.shape)} to shape {rules.fmt(target)}")
    return target


def _broadcast_to_grad(op, dz):
    """dz summed back over the broadcast dims (SumToShape, the adjoint of broadcasting)."""
    x = op.inputs[0]
    if x._shape is not None and None not in x._shape and dz._shape == x._shape:
        return [dz, None]
    return [emit("SumToShape", dz, shape_of(x), static_shape=ShapeAttr(x._shape)), None]


BroadcastTo = op("BroadcastTo", shape=_broadcast_to_shape, dtype=lambda args, attrs: args[0].dtype,
                 grad=_broadcast_to_grad, inputs=("input", "shape"),
                 kernel=lambda ctx, x, shape: ctx.xp.broadcast_to(x, host_ints(ctx, shape)))


def broadcast_to(input, shape, name=None):  # noqa: A002 - TF's name
    x = convert_to_tensor(input)
    with name_scope(name, "BroadcastTo") as scope:
        target = int_tensor(shape, "shape")
        return with_known_elements(apply_op("BroadcastTo", (x, target), {}, scope).outputs[0], target)
