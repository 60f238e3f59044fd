"""Joining and splitting: concat, stack (Pack), unstack (Unpack), split (Split, SplitV).

Each one's gradient is its inverse: concat's splits, split's concatenates, stack's unstacks.
"""
from __future__ import annotations

import numpy as np

from graphexec.framework import apply_op, name_scope
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.emit import emit
from graphexec.ops.registry import ShapeError, attr, op
from graphexec.ops.shape_inputs import (axis_of, axis_tensor, check_index_dtype, dim_of, host_ints, int_tensor,
                                        known_axis, rank_of, vector_length, vector_value)

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["concat", "split", "stack", "unstack"]


def _outputs(pieces: list):
    """Kernel results of a multi-output op: a list, except that one output is returned as itself
    (the executor's convention for single-output steps)."""
    return pieces[0] if len(pieces) == 1 else pieces


def _filled_in(grads, outputs):
    """Output gradients with zeros where an output received none (for ops that rejoin their outputs)."""
    return [emit("ZerosLike", o) if g is None else g for g, o in zip(grads, outputs)]


def _dim_sizes(tensors, axis):
    """The tensors' sizes along `axis`: a Python list when known, else an int32 vector computed at run time."""
    dims = [dim_of(t, axis) for t in tensors]
    return dims if all(isinstance(d, int) for d in dims) else emit("Pack", *dims, axis=0)


# -- ConcatV2, Pack, Unpack ---------------------------------------------------------------------------
def _merge_dims(a, b, what):
    if a is not None and b is not None and a != b:
        raise ShapeError(what)
    return a if a is not None else b


def _concat_shape(args, attrs):
    values, axis_arg = args[:-1], args[-1]
    check_index_dtype(axis_arg, "axis")
    shapes = [v.shape for v in values]
    known = [s for s in shapes if s is not None]
    if not known:
        return None
    rank = len(known[0])
    if rank == 0:
        raise ShapeError("can't concatenate scalars (use tf.stack instead)")
    if any(len(s) != rank for s in known):
        raise ShapeError(f"all inputs must have the same rank, got {', '.join(rules.fmt(s) for s in shapes)}")
    axis = axis_of(axis_arg, rank)
    if axis is None:
        return (None,) * rank
    out = []
    for dim in range(rank):
        column = [s[dim] for s in shapes if s is not None]
        if dim == axis:
            out.append(None if None in column or len(column) < len(shapes) else sum(column))
            continue
        merged = None
        for d in column:
            merged = _merge_dims(merged, d, f"dimension {dim} must match across inputs (concatenating on axis "
                                            f"{axis}), got {', '.join(rules.fmt(s) for s in shapes)}")
        out.append(merged)
    return tuple(out)


def _concat(ctx, *args):
    *values, axis = args
    return ctx.xp.concatenate(values, axis=int(axis))


def _concat_grad(op, dz):
    *values, axis_input = op.inputs
    axis = known_axis(op, axis_input, rank_of(op, values[0]))
    return [*split(dz, _dim_sizes(values, axis), axis=axis, num=len(values)), None]


ConcatV2 = op("ConcatV2", shape=_concat_shape, kernel=_concat, grad=_concat_grad, inputs=("*values", "axis"),
              dtype=lambda args, attrs: rules.same_dtype()(args[:-1], attrs))


def concat(values, axis, name="concat"):
    tensors = [convert_to_tensor(v) for v in values]
    if not tensors:
        raise ValueError("concat needs at least one tensor")
    if len(tensors) == 1:  # as in TF: nothing to join
        return emit("Identity", tensors[0], name=name)
    with name_scope(name) as scope:
        return apply_op("ConcatV2", (*tensors, axis_tensor(axis)), {}, scope).outputs[0]


def _pack_shape(args, attrs):
    merged = None
    for a in args:
        merged = _merge_shapes(merged, a.shape, args)
    if merged is None:
        return None
    axis = rules.normalize_axis(attrs["axis"], len(merged) + 1)
    return merged[:axis] + (len(args),) + merged[axis:]


def _merge_shapes(a, b, args):
    if a is None or b is None:
        return a if b is None else b
    if len(a) != len(b):
        raise ShapeError(f"shapes of all inputs must match, got {', '.join(rules.fmt(x.shape) for x in args)}")
    return tuple(_merge_dims(x, y, f"shapes of all inputs must match, got "
                                   f"{', '.join(rules.fmt(v.shape) for v in args)}") for x, y in zip(a, b))


Pack = op("Pack", shape=_pack_shape, dtype=rules.same_dtype(),
          grad=lambda op, dz: unstack(dz, num=len(op.inputs), axis=op.attrs["axis"]),
          kernel=lambda ctx, *values, axis: ctx.xp.stack(values, axis=axis), inputs=("*values",),
          attrs={"axis": attr("int", 0)})


def stack(values, axis=0, name="stack"):
    tensors = [convert_to_tensor(v) for v in values]
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    return apply_op("Pack", tensors, {"axis": int(axis)}, name).outputs[0]


def _unpack_shapes(args, attrs):
    shape, num = args[0].shape, attrs["num"]
    if shape is None:
        return [None] * num
    axis = rules.normalize_axis(attrs["axis"], len(shape))
    if shape[axis] is not None and shape[axis] != num:
        raise ShapeError(f"dimension {axis} has size {shape[axis]}, cannot unstack it into {num} tensors")
    return [shape[:axis] + shape[axis + 1:]] * num


def _unpack(ctx, x, num, axis):
    if x.shape[axis] != num:
        raise ValueError(f"dimension {axis} has size {x.shape[axis]}, cannot unstack it into {num} tensors")
    return _outputs([ctx.xp.take(x, i, axis=axis) for i in range(num)])


Unpack = op("Unpack", shape=_unpack_shapes, kernel=_unpack,
            grad=lambda op, *dzs: [stack(_filled_in(dzs, op.outputs), axis=op.attrs["axis"])],
            dtype=lambda args, attrs: [args[0].dtype] * attrs["num"], inputs=("value",),
            attrs={"num": attr("int"), "axis": attr("int", 0)})


def unstack(value, num=None, axis=0, name="unstack"):
    value = convert_to_tensor(value)
    if num is None:
        shape = value._shape
        num = shape[rules.normalize_axis(int(axis), len(shape))] if shape else None
        if num is None:
            raise ValueError(f"Cannot infer num from shape {value.shape}")
    return list(apply_op("Unpack", (value,), {"num": int(num), "axis": int(axis)}, name).outputs)


# -- Split, SplitV ---------------------------------------------------------------------------------
def _pieces(value, axis_arg, num: int, sizes):
    """Output shapes of splitting `value` along `axis_arg` into `num` pieces; `sizes(dim, axis)` gives the
    pieces' sizes along the axis once it is known."""
    check_index_dtype(axis_arg, "axis")
    shape = value.shape
    if shape is None:
        return [None] * num
    axis = axis_of(axis_arg, len(shape))
    if axis is None:
        return [(None,) * len(shape)] * num
    return [shape[:axis] + (piece,) + shape[axis + 1:] for piece in sizes(shape[axis], axis)]


def _even_sizes(num: int):
    def sizes(dim, axis):
        if dim is not None and dim % num:
            raise ShapeError(f"Number of ways to split should evenly divide the split dimension, but got "
                             f"split_dim {axis} (size = {dim}) and num_split {num}")
        return [None if dim is None else dim // num] * num

    return sizes


def _split_shapes(args, attrs):
    axis_arg, value = args
    return _pieces(value, axis_arg, attrs["num_split"], _even_sizes(attrs["num_split"]))


def _split(ctx, axis, value, num_split):
    axis = int(axis)
    if value.shape[axis] % num_split:
        raise ValueError(f"Number of ways to split should evenly divide the split dimension, but got split_dim "
                         f"{axis} (size = {value.shape[axis]}) and num_split {num_split}")
    return _outputs(ctx.xp.split(value, num_split, axis=axis))


Split = op("Split", shape=_split_shapes, kernel=_split, inputs=("axis", "value"), attrs={"num_split": attr("int")},
           grad=lambda op, *dzs: [None, concat(_filled_in(dzs, op.outputs), op.inputs[0])],
           dtype=lambda args, attrs: [args[1].dtype] * attrs["num_split"])


def _resolve_sizes(sizes, dim):
    """size_splits with its one -1 (if any) filled in from the split dimension."""
    if sizes.count(-1) > 1:
        raise ShapeError(f"only one size_splits value can be -1, got {sizes}")
    if -1 in sizes:
        if dim is None:
            return [None if s == -1 else s for s in sizes]
        rest = dim - sum(s for s in sizes if s != -1)
        if rest < 0:
            raise ShapeError(f"size_splits {sizes} add up to more than the split dimension ({dim})")
        return [rest if s == -1 else s for s in sizes]
    if dim is not None and sum(sizes) != dim:
        raise ShapeError(f"size_splits {sizes} must add up to the split dimension ({dim})")
    return sizes


def _splitv_shapes(args, attrs):
    value, sizes_arg, axis_arg = args
    num = attrs["num_split"]
    sizes = vector_value(sizes_arg, "size_splits", num)
    return _pieces(value, axis_arg, num,
                   lambda dim, axis: [None] * num if sizes is None else _resolve_sizes(sizes, dim))


def _splitv(ctx, value, size_splits, axis, num_split):
    axis = int(axis)
    try:
        sizes = _resolve_sizes(list(host_ints(ctx, size_splits)), value.shape[axis])
    except ShapeError as exc:
        raise ValueError(str(exc)) from None
    bounds = np.cumsum(sizes)[:-1].tolist()
    return _outputs(ctx.xp.split(value, bounds, axis=axis))


SplitV = op("SplitV", shape=_splitv_shapes, kernel=_splitv, inputs=("value", "size_splits", "axis"),
            attrs={"num_split": attr("int")},
            grad=lambda op, *dzs: [concat(_filled_in(dzs, op.outputs), op.inputs[2]), None, None],
            dtype=lambda args, attrs: [args[0].dtype] * attrs["num_split"])


def split(value, num_or_size_splits, axis=0, num=None, name="split"):
    value = convert_to_tensor(value)
    with name_scope(name) as scope:
        split_dim = axis_tensor(axis, "split_dim")
        if isinstance(num_or_size_splits, (int, np.integer)):
            attrs = {"num_split": int(num_or_size_splits)}
            return list(apply_op("Split", (split_dim, value), attrs, scope).outputs)
        sizes = int_tensor(num_or_size_splits, "size_splits")
        if num is None:
            num = vector_length(sizes.aval)
            if num is None:
                raise ValueError(f"Cannot infer num from shape {sizes.shape}")
        return list(apply_op("SplitV", (value, sizes, split_dim), {"num_split": int(num)}, scope).outputs)


