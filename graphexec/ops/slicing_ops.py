"""Slicing and padding: tensor[...] (StridedSlice), tf.slice, tf.pad in its three modes, and the
gradient ops that put a slice back where it came from (StridedSliceGrad, MirrorPadGrad).

Pad is the adjoint of slice (and slice of pad), so each one's gradient is the other.
"""
from __future__ import annotations

import builtins
import functools

import numpy as np

from graphexec import dtypes
from graphexec.framework import Tensor, apply_op, name_scope
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.emit import emit
from graphexec.ops.registry import ShapeError, attr, op
from graphexec.ops.shape_inputs import (check_index_dtype, host_ints, int_tensor, is_tensorlike, scalar_value,
                                        shape_of, vector_length, vector_value)

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["pad", "slice"]

# -- strided slice (tensor[...]) ---------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def _index(begin, end, strides, begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_axis_mask):
    index = []
    for i, (b, e, s) in enumerate(zip(begin, end, strides)):
        bit = 1 << i
        if ellipsis_mask & bit:
            index.append(Ellipsis)
        elif new_axis_mask & bit:
            index.append(None)
        elif shrink_axis_mask & bit:
            index.append(b)
        else:
            index.append(builtins.slice(None if begin_mask & bit else b, None if end_mask & bit else e, s))
    return tuple(index)


def _strided_slice_kernel(ctx, x, **spec):
    return x[_index(**spec)]


_PROBE_SIZE = 1000003  # stand-in for unknown dims: big enough that any integer index fits


def _sliced_axes(index, rank):
    """For each output dim of x[index], the input axis it slices (None for a new axis)."""
    consumed = sum(1 for item in index if item is not None and item is not Ellipsis)
    axis, sources = 0, []
    for item in index:
        if item is Ellipsis:
            sources += range(axis, axis + rank - consumed)
            axis += rank - consumed
        elif item is None:
            sources.append(None)
        else:
            if isinstance(item, builtins.slice):
                sources.append(axis)
            axis += 1  # an integer index removes its axis
    if Ellipsis not in index:
        sources += range(axis, rank)
    return sources


def _strided_slice_shape(args, attrs):
    shape = args[0].shape
    if shape is None:
        return None
    index = _index(**attrs)
    concrete = tuple(_PROBE_SIZE if d is None else d for d in shape)
    try:
        out = np.broadcast_to(np.empty((), np.int8), concrete)[index].shape
    except IndexError as exc:
        raise ShapeError(f"slice index out of bounds: {exc}") from None
    # a slice of an unknown dim has an unknown length (x[1:100] is 99 long only if x has 100 elements)
    return tuple(None if axis is not None and shape[axis] is None else d
                 for d, axis in zip(out, _sliced_axes(index, len(shape))))


def _strided_slice_grad(op, dy):
    """dy placed into zeros of the input's shape at the sliced positions."""
    return [apply_op("StridedSliceGrad", (shape_of(op.inputs[0]), dy), dict(op.attrs), "StridedSliceGrad").outputs[0]]


_MASK = attr("int", 0)
_STRIDED_SLICE_ATTRS = {"begin": attr("list(int)"), "end": attr("list(int)"), "strides": attr("list(int)"),
                        "begin_mask": _MASK, "end_mask": _MASK, "ellipsis_mask": _MASK, "new_axis_mask": _MASK,
                        "shrink_axis_mask": _MASK}
StridedSlice = op("StridedSlice", shape=_strided_slice_shape, dtype=rules.same_dtype(),
                  kernel=_strided_slice_kernel, grad=_strided_slice_grad, inputs=("input",),
                  attrs=_STRIDED_SLICE_ATTRS)


def _strided_slice_grad_kernel(ctx, shape, grad, **spec):
    """Zeros of `shape` with `grad` written where StridedSlice with the same spec reads."""
    out = ctx.xp.zeros(host_ints(ctx, shape), dtype=grad.dtype)
    out[_index(**spec)] = grad
    return out


def _strided_slice_grad_shape(args, attrs):
    shape_arg = args[0]
    if shape_arg.value is not None:
        return tuple(int(d) for d in shape_arg.value)
    return None if shape_arg.shape is None or shape_arg.shape[0] is None else (None,) * shape_arg.shape[0]


StridedSliceGrad = op("StridedSliceGrad", shape=_strided_slice_grad_shape, dtype=lambda args, attrs: args[1].dtype,
                      kernel=_strided_slice_grad_kernel, inputs=("shape", "dy"), attrs=_STRIDED_SLICE_ATTRS,
                      grad=lambda op, dy: [None, apply_op("StridedSlice", (dy,), dict(op.attrs)).outputs[0]])


def strided_slice_spec(key):
    """A Python index (ints, slices, None/newaxis, Ellipsis) as TF's begin/end/strides + masks."""
    if not isinstance(key, tuple):
        key = (key,)
    begin, end, strides = [], [], []
    masks = dict(begin_mask=0, end_mask=0, ellipsis_mask=0, new_axis_mask=0, shrink_axis_mask=0)
    for i, item in enumerate(key):
        bit = 1 << i
        if item is Ellipsis:
            masks["ellipsis_mask"] |= bit
            item_bes = (0, 0, 1)
        elif item is None:
            masks["new_axis_mask"] |= bit
            item_bes = (0, 0, 1)
        elif isinstance(item, builtins.slice):
            parts = []
            for part in (item.start, item.stop, item.step):
                if isinstance(part, Tensor):
                    raise TypeError("slicing with Tensor bounds is not supported; use tf.slice or tf.gather")
                parts.append(part)
            start, stop, step = parts
            if step == 0:
                raise ValueError("slice step cannot be zero")
            if start is None:
                masks["begin_mask"] |= bit
            if stop is None:
                masks["end_mask"] |= bit
            item_bes = (start or 0, stop or 0, 1 if step is None else int(step))
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            masks["shrink_axis_mask"] |= bit
            item_bes = (int(item), int(item) + 1, 1)
        else:
            raise TypeError(f"Only integers, slices (`:`), ellipsis (`...`), tf.newaxis (`None`) are valid "
                            f"indices, got {item!r}")
        begin.append(int(item_bes[0]))
        end.append(int(item_bes[1]))
        strides.append(int(item_bes[2]))
    return {"begin": tuple(begin), "end": tuple(end), "strides": tuple(strides), **masks}


def getitem(tensor, key):
    return apply_op("StridedSlice", (convert_to_tensor(tensor),), strided_slice_spec(key), "strided_slice").outputs[0]


# -- Slice -------------------------------------------------------------------------------------------
def _slice_bounds(shape, begin, size):
    """Each dim's (begin, size) with size -1 resolved; raises on out-of-range bounds."""
    out = []
    for dim, (b, s, d) in enumerate(zip(begin, size, shape)):
        if s == -1:
            s = None if d is None else d - b
        if b < 0 or (s is not None and s < 0) or (d is not None and s is not None and b + s > d):
            raise ShapeError(f"Expected begin[{dim}] in [0, {d}] and size[{dim}] in [0, {d} - {b}], "
                             f"got begin {list(begin)} and size {list(size)} for shape {rules.fmt(shape)}")
        out.append((b, s))
    return out


def _slice_shape(args, attrs):
    x, begin_arg, size_arg = args
    check_index_dtype(begin_arg, "begin")
    check_index_dtype(size_arg, "size")
    rank = x.rank if x.rank is not None else vector_length(begin_arg)
    begin = vector_value(begin_arg, "begin", rank)
    size = vector_value(size_arg, "size", rank)
    if rank is None:
        return None
    if size is not None and begin is None:  # sizes other than -1 are known even when begin is not
        return tuple(None if s == -1 else s for s in size)
    if begin is None or size is None:
        return (None,) * rank
    shape = x.shape if x.shape is not None else (None,) * rank
    return tuple(s for _, s in _slice_bounds(shape, begin, size))


def _slice(ctx, x, begin, size):
    try:
        bounds = _slice_bounds(x.shape, host_ints(ctx, begin), host_ints(ctx, size))
    except ShapeError as exc:
        raise ValueError(str(exc)) from None
    return x[tuple(builtins.slice(b, b + s) for b, s in bounds)]
def _slice_grad(op, dz):
    """dz padded with zeros back to the input's extent."""
    x, begin, _ = op.inputs
    after = emit("Sub", emit("Sub", _as(shape_of(x), begin.dtype), begin), _as(shape_of(dz), begin.dtype))
    return [pad(dz, emit("Pack", begin, after, axis=1)), None, None]


def _as(t: Tensor, dtype) -> Tensor:
    return t if t.dtype is dtype else emit("Cast", t, DstT=dtype)


Slice = op("Slice", shape=_slice_shape, dtype=lambda args, attrs: args[0].dtype, kernel=_slice, grad=_slice_grad,
           inputs=("input", "begin", "size"))


def slice(input_, begin, size, name=None):  # noqa: A001 - TF's name
    x = convert_to_tensor(input_)
    with name_scope(name, "Slice") as scope:
        return apply_op("Slice", (x, int_tensor(begin, "begin"), int_tensor(size, "size")), {}, scope).outputs[0]


# -- PadV2, MirrorPad, MirrorPadGrad ----------------------------------------------------------------------
def _paddings_value(args):
    """Known paddings as a list of (before, after) pairs, or None; checks the [rank, 2] shape."""
    x, paddings = args[0], args[1]
    check_index_dtype(paddings, "paddings")
    if paddings.shape is not None:
        if len(paddings.shape) != 2 or paddings.shape[1] not in (2, None):
            raise ShapeError(f"paddings must be a matrix with 2 columns, got shape {rules.fmt(paddings.shape)}")
        if x.rank is not None and paddings.shape[0] not in (x.rank, None):
            raise ShapeError(f"paddings must have one row per dimension of the input (rank {x.rank}), "
                             f"got shape {rules.fmt(paddings.shape)}")
    if paddings.value is None:
        return None
    pairs = [(int(b), int(a)) for b, a in paddings.value]
    if any(b < 0 or a < 0 for b, a in pairs):
        raise ShapeError(f"paddings must be non-negative, got {pairs}")
    return pairs


def _padded_shape(x, pairs, paddings):
    rank = x.rank if x.rank is not None else (None if paddings.shape is None else paddings.shape[0])
    if rank is None:
        return None
    if pairs is None:
        return (None,) * rank
    shape = x.shape if x.shape is not None else (None,) * rank
    return tuple(None if d is None else d + b + a for d, (b, a) in zip(shape, pairs))


def _pad_shape(args, attrs):
    scalar_value(args[2], "constant_values")
    return _padded_shape(args[0], _paddings_value(args), args[1])


def _pad(ctx, x, paddings, constant_values):
    pairs = np.asarray(ctx.to_host(paddings)).tolist()
    if x.dtype == object:  # tf.string: np.pad would turn the fill into a numpy bytes scalar
        out = np.full([before + d + after for d, (before, after) in zip(x.shape, pairs)], constant_values.item(),
                      dtype=object)
        out[tuple(builtins.slice(before, before + d) for d, (before, _) in zip(x.shape, pairs))] = x
        return out
    return ctx.xp.pad(x, pairs, mode="constant", constant_values=constant_values.item())


def _check_mirror_paddings(shape, pairs, mode):
    extra = 0 if mode == "SYMMETRIC" else 1  # REFLECT leaves out the edge, so it has one element less to mirror
    for dim, (d, (before, after)) in enumerate(zip(shape, pairs)):
        if d is not None and builtins.max(before, after) + extra > d:
            raise ShapeError(f"paddings {pairs[dim]} of dimension {dim} must be at most {d - extra} in {mode} "
                             f"mode (the dimension has size {d})")


def _mirror_pad_shape(args, attrs):
    x = args[0]
    pairs = _paddings_value(args)
    if pairs is not None and x.shape is not None:
        _check_mirror_paddings(x.shape, pairs, attrs["mode"])
    return _padded_shape(x, pairs, args[1])


def _mirror_pad(ctx, x, paddings, mode):
    pairs = np.asarray(ctx.to_host(paddings)).tolist()
    try:
        _check_mirror_paddings(x.shape, pairs, mode)
    except ShapeError as exc:
        raise ValueError(str(exc)) from None
    return ctx.xp.pad(x, pairs, mode="reflect" if mode == "REFLECT" else "symmetric")


def _pad_grad(op, dz):
    x, paddings = op.inputs[:2]
    return [slice(dz, getitem(paddings, (builtins.slice(None), 0)), shape_of(x)), None, None]


PadV2 = op("PadV2", shape=_pad_shape, kernel=_pad, grad=_pad_grad, inputs=("input", "paddings", "constant_values"),
           dtype=lambda args, attrs: rules.same_dtype()([args[0], args[2]], attrs))
_MODE = {"mode": attr("string")}  # "REFLECT" or "SYMMETRIC"
MirrorPad = op("MirrorPad", shape=_mirror_pad_shape, dtype=lambda args, attrs: args[0].dtype, kernel=_mirror_pad,
               inputs=("input", "paddings"), attrs=_MODE,
               grad=lambda op, dz: [apply_op("MirrorPadGrad", (dz, op.inputs[1]), dict(op.attrs)).outputs[0], None])


def _along(axis: int, index) -> tuple:
    return (builtins.slice(None),) * axis + (index,)


def _mirror_pad_grad(ctx, grad, paddings, mode):
    """The reflected borders folded back onto the elements they copy."""
    xp = ctx.xp
    offset = 1 if mode == "REFLECT" else 0  # REFLECT skips the edge element, SYMMETRIC repeats it
    for axis, (before, after) in enumerate(np.asarray(ctx.to_host(paddings)).tolist()):
        n = grad.shape[axis] - before - after
        core = grad[_along(axis, builtins.slice(before, before + n))].copy()
        if before:
            core[_along(axis, builtins.slice(offset, offset + before))] += xp.flip(
                grad[_along(axis, builtins.slice(0, before))], axis)
        if after:
            core[_along(axis, builtins.slice(n - offset - after, n - offset))] += xp.flip(
                grad[_along(axis, builtins.slice(before + n, None))], axis)
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
                   kernel=_mirror_pad_grad, inputs=("grad", "paddings"), attrs=_MODE,
                   grad=lambda op, g: [apply_op("MirrorPad", (g, op.inputs[1]), dict(op.attrs)).outputs[0], None])




def pad(tensor, paddings, mode="CONSTANT", name=None, constant_values=0):
    x = convert_to_tensor(tensor)
    mode = mode.upper()
    if mode not in ("CONSTANT", "REFLECT", "SYMMETRIC"):
        raise ValueError(f"Unknown padding mode: {mode}")
    with name_scope(name, "Pad") as scope:
        pads = int_tensor(paddings, "paddings")
        if mode != "CONSTANT":
            return apply_op("MirrorPad", (x, pads), {"mode": mode}, scope).outputs[0]
        if x.dtype is dtypes.string and not is_tensorlike(constant_values) and constant_values == 0:
            constant_values = b""  # the default pad of a string tensor is the empty string, as in TF
        fill_value = convert_to_tensor(constant_values, dtype=None if is_tensorlike(constant_values) else x.dtype,
                                       name="constant_values")
        return apply_op("PadV2", (x, pads, fill_value), {}, scope).outputs[0]


