"""Indexing: gather (rows along an axis), gather_nd (elements or slices at coordinate vectors), one_hot,
where(condition) (the coordinates of true elements), and the scatter-adds that are the gathers'
adjoints (UnsortedSegmentSum for gather, ScatterNd for gather_nd).

Gradients are dense: a gather's gradient is a full-size tensor, not TF's IndexedSlices.
"""
from __future__ import annotations

import math

import numpy as np

from graphexec import dtypes
from graphexec.framework import Tensor, apply_op, name_scope
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor, numpy_value
from graphexec.ops.emit import emit
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.ops.shape_inputs import (axis_of, axis_tensor, check_index_dtype, dim_of, dims_shape, host_ints,
                                        int_tensor, is_tensorlike, known_axis, rank_of, scalar_value, shape_of)

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["gather", "gather_nd", "one_hot", "scatter_nd", "unsorted_segment_sum"]


# -- GatherV2 and its adjoint UnsortedSegmentSum ----------------------------------------------------------
def _gather_shape(args, attrs):
    params, indices, axis_arg = args
    check_index_dtype(indices, "indices")
    check_index_dtype(axis_arg, "axis")
    if params.shape is None or indices.shape is None:
        return None
    if not params.shape:
        raise ShapeError("params must be at least 1 dimensional")
    axis = axis_of(axis_arg, len(params.shape))
    if axis is None:
        return None
    return params.shape[:axis] + indices.shape + params.shape[axis + 1:]


def _gather(ctx, params, indices, axis):
    axis = int(axis) % params.ndim
    limit = params.shape[axis]
    if indices.size:
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= limit:
            bad = low if low < 0 else high
            raise ValueError(f"indices contains {bad}, which is not in [0, {limit})")
    return ctx.xp.take(params, indices, axis=axis)


def _gather_grad(op, dz):
    """Scatter-add dz back to the gathered rows (moved to the front when the axis is not 0)."""
    params, indices, axis_input = op.inputs
    rank = rank_of(op, params)
    axis = known_axis(op, axis_input, rank)
    rows = dim_of(params, axis)
    if axis == 0:
        return [unsorted_segment_sum(dz, indices, rows), None, None]
    index_rank = rank_of(op, indices)
    indices_first = (*range(axis, axis + index_rank), *range(axis), *range(axis + index_rank, rank - 1 + index_rank))
    summed = unsorted_segment_sum(emit("Transpose", dz, perm=indices_first), indices, rows)
    return [emit("Transpose", summed, perm=(*range(1, axis + 1), 0, *range(axis + 1, rank))), None, None]


GatherV2 = op("GatherV2", shape=_gather_shape, dtype=lambda args, attrs: args[0].dtype, kernel=_gather,
              grad=_gather_grad, inputs=("params", "indices", "axis"))


def gather(params, indices, validate_indices=None, name=None, axis=None, batch_dims=0):
    if batch_dims:
        raise NotImplementedError("gather with batch_dims != 0 is not supported")
    params = convert_to_tensor(params)
    with name_scope(name, "GatherV2") as scope:
        indices = convert_to_tensor(indices, name="indices")
        axis = axis_tensor(0 if axis is None else axis)
        return apply_op("GatherV2", (params, indices, axis), {}, scope).outputs[0]


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


UnsortedSegmentSum = op("UnsortedSegmentSum", shape=_segment_sum_shape, dtype=lambda args, attrs: args[0].dtype,
                        kernel=_segment_sum, grad=lambda op, dy: [gather(dy, op.inputs[1]), None, None],
                        inputs=("data", "segment_ids", "num_segments"))


def unsorted_segment_sum(data, segment_ids, num_segments, name=None) -> Tensor:
    num = num_segments if isinstance(num_segments, Tensor) else convert_to_tensor(num_segments, dtypes.int32)
    return apply_op("UnsortedSegmentSum", (convert_to_tensor(data), convert_to_tensor(segment_ids), num), {},
                    name or "UnsortedSegmentSum").outputs[0]


# -- GatherNd and its adjoint ScatterNd ----------------------------------------------------------------------
def _flat_positions(ctx, indices, dims: tuple):
    """Row numbers in x.reshape(prod(dims), ...) of the coordinate vectors in indices[..., len(dims)]."""
    xp = ctx.xp
    count = math.prod(indices.shape[:-1])
    coords = indices.reshape(count, len(dims)).astype(np.int64, copy=False)
    outside = ((coords < 0) | (coords >= xp.asarray(dims, dtype=np.int64))).any(axis=1)
    if count and bool(outside.any()):
        row = int(xp.argmax(outside))
        raise ValueError(f"indices[{row}] = {list(host_ints(ctx, coords[row]))} does not index into param shape "
                         f"{list(dims)}")
    strides = [math.prod(dims[i + 1:]) for i in range(len(dims))]
    return (coords * xp.asarray(strides, dtype=np.int64)).sum(axis=1)


def _gather_nd_shape(args, attrs):
    params, indices = args
    check_index_dtype(indices, "indices")
    if indices.rank == 0:
        raise ShapeError("indices must be at least a vector (its last dimension indexes into params)")
    if params.shape is None or indices.shape is None or indices.shape[-1] is None:
        return None
    depth = indices.shape[-1]
    if depth > len(params.shape):
        raise ShapeError(f"indices index {depth} dimensions (their last dimension) but params only has "
                         f"{len(params.shape)}")
    return indices.shape[:-1] + params.shape[depth:]


def _gather_nd(ctx, params, indices):
    depth = indices.shape[-1]
    outer, inner = params.shape[:depth], params.shape[depth:]
    rows = params.reshape((math.prod(outer),) + inner)[_flat_positions(ctx, indices, outer)]
    return rows.reshape(indices.shape[:-1] + inner)


GatherNd = op("GatherNd", shape=_gather_nd_shape, dtype=lambda args, attrs: args[0].dtype, kernel=_gather_nd,
              grad=lambda op, dz: [scatter_nd(op.inputs[1], dz, shape_of(op.inputs[0])), None],
              inputs=("params", "indices"))


def gather_nd(params, indices, name=None, batch_dims=0):
    """tf.gather_nd: out[i...] = params[indices[i...]], each indices[i...] a coordinate vector (a prefix of
    params' dims: the rest of params comes along as a slice)."""
    if batch_dims:
        raise NotImplementedError("gather_nd with batch_dims != 0 is not supported")
    params = convert_to_tensor(params)
    with name_scope(name, "GatherNd") as scope:
        indices = convert_to_tensor(indices, name="indices")
        return apply_op("GatherNd", (params, indices), {}, scope).outputs[0]


def _scatter_nd_shape(args, attrs):
    indices, updates, shape_arg = args
    check_index_dtype(indices, "indices")
    check_index_dtype(shape_arg, "shape")
    out = dims_shape(shape_arg, "shape")
    if out is None or indices.shape is None or updates.shape is None or indices.shape[-1] is None:
        return out
    depth = indices.shape[-1]
    want = indices.shape[:-1] + out[depth:]
    if len(want) != len(updates.shape) or any(None not in (a, b) and a != b for a, b in zip(want, updates.shape)):
        raise ShapeError(f"updates must have shape {rules.fmt(want)} (indices' batch dims, then the shape's last "
                         f"{len(out) - depth}), got {rules.fmt(updates.shape)}")
    return out


def _scatter_nd(ctx, indices, updates, shape):
    dims = host_ints(ctx, shape)
    depth = indices.shape[-1]
    outer, inner = dims[:depth], dims[depth:]
    positions = _flat_positions(ctx, indices, outer)
    if updates.shape != indices.shape[:-1] + inner:
        raise ValueError(f"updates must have shape {list(indices.shape[:-1] + inner)}, got {list(updates.shape)}")
    out = ctx.xp.zeros((math.prod(outer),) + inner, dtype=updates.dtype)
    ctx.xp.add.at(out, positions, updates.reshape((len(positions),) + inner))  # repeated coordinates add up
    return out.reshape(dims)


def _scatter_nd_dtype(args, attrs):
    if args[1].dtype is dtypes.string:  # its updates add up where indices repeat
        raise ShapeError("scatter_nd takes number or bool updates, got string")
    return args[1].dtype


ScatterNd = op("ScatterNd", shape=_scatter_nd_shape, dtype=_scatter_nd_dtype, kernel=_scatter_nd,
               grad=lambda op, dy: [None, gather_nd(dy, op.inputs[0]), None], inputs=("indices", "updates", "shape"))


def scatter_nd(indices, updates, shape, name=None):
    """tf.scatter_nd: zeros of `shape` with each updates[i...] added at the coordinates indices[i...]."""
    with name_scope(name, "ScatterNd") as scope:
        indices = convert_to_tensor(indices, name="indices")
        updates = convert_to_tensor(updates, name="updates")
        return apply_op("ScatterNd", (indices, updates, int_tensor(shape, "shape")), {}, scope).outputs[0]


# -- OneHot ------------------------------------------------------------------------------------------
def _one_hot_shape(args, attrs):
    indices, depth_arg, on_value, off_value = args
    if indices.dtype not in (dtypes.uint8, dtypes.int32, dtypes.int64):
        raise ShapeError(f"indices must be uint8, int32 or int64, got {indices.dtype.name}")
    check_index_dtype(depth_arg, "depth")
    scalar_value(on_value, "on_value")
    scalar_value(off_value, "off_value")
    depth = scalar_value(depth_arg, "depth")
    if depth is not None and depth < 0:
        raise ShapeError(f"depth must be non-negative, got {depth}")
    if indices.shape is None:
        return None
    axis = attrs["axis"]
    if not -1 <= axis <= len(indices.shape):
        raise ShapeError(f"axis {axis} must be -1 or in [0, {len(indices.shape)}]")
    axis = len(indices.shape) if axis == -1 else axis
    return indices.shape[:axis] + (depth,) + indices.shape[axis:]


def _one_hot(ctx, indices, depth, on_value, off_value, axis):
    xp = ctx.xp
    hot = indices[..., None] == xp.arange(int(depth))  # out-of-range (and negative) indices: all off
    out = xp.where(hot, on_value, off_value).astype(on_value.dtype, copy=False)
    return out if axis == -1 else xp.moveaxis(out, -1, axis)


OneHot = op("OneHot", shape=_one_hot_shape, kernel=_one_hot, grad=NOT_DIFFERENTIABLE,
            inputs=("indices", "depth", "on_value", "off_value"), attrs={"axis": attr("int", -1)},
            dtype=lambda args, attrs: rules.same_dtype()(args[2:], attrs))


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None):
    """tf.one_hot: the output dtype is `dtype`, else on_value's/off_value's, else float32."""
    if dtype is None:
        given = [_dtype_of(v) for v in (on_value, off_value) if v is not None]
        dtype = given[0] if given else dtypes.float32
    dtype = dtypes.as_dtype(dtype)
    with name_scope(name, "one_hot") as scope:
        on = convert_to_tensor(1 if on_value is None else on_value, dtype=dtype, name="on_value")
        off = convert_to_tensor(0 if off_value is None else off_value, dtype=dtype, name="off_value")
        depth = convert_to_tensor(depth, dtype=None if is_tensorlike(depth) else dtypes.int32, name="depth")
        attrs = {"axis": -1 if axis is None else int(axis)}
        return apply_op("OneHot", (convert_to_tensor(indices), depth, on, off), attrs, scope).outputs[0]


def _dtype_of(value):
    if is_tensorlike(value):
        return value.dtype
    return dtypes.from_numpy(numpy_value(value).dtype)


# -- Where (one argument) ------------------------------------------------------------------------------
def _where_shape(args, attrs):
    rank = args[0].rank
    return None if rank is None else (None, rank)


Where = op("Where", shape=_where_shape, dtype=lambda args, attrs: dtypes.int64, grad=NOT_DIFFERENTIABLE,
           inputs=("condition",),
           kernel=lambda ctx, condition: ctx.xp.argwhere(condition).astype(np.int64, copy=False))

