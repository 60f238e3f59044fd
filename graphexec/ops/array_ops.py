"""Array ops: placeholders, identity, reshape/shape queries, strided slicing, transposes."""
from __future__ import annotations

import functools

import numpy as np

from graphexec import dtypes
from graphexec.framework import Tensor, apply_op
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor, shape_attr
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, op


def _not_fed(ctx, **attrs):
    raise AssertionError("placeholders are bound to feeds by the compiler")


def _placeholder_shape(args, attrs):
    return attrs["shape"].dims


Placeholder = op("Placeholder", shape=_placeholder_shape, dtype=rules.attr_dtype(), kernel=_not_fed,
                 grad=NOT_DIFFERENTIABLE, is_placeholder=True)


def _with_default_shape(args, attrs):
    declared = attrs["shape"].dims
    given = args[0].shape
    if declared is not None and given is not None:
        if len(declared) != len(given) or any(d is not None and g is not None and d != g
                                              for d, g in zip(declared, given)):
            raise ShapeError(f"default value of shape {rules.fmt(given)} does not match shape {rules.fmt(declared)}")
    return declared


PlaceholderWithDefault = op("PlaceholderWithDefault", shape=_with_default_shape, dtype=rules.same_dtype(),
                            kernel=lambda ctx, x, shape: x, grad=lambda op, dy: [dy])
Identity = op("Identity", shape=rules.unchanged, dtype=rules.same_dtype(), kernel=lambda ctx, x: x,
              grad=lambda op, dy: [dy])
StopGradient = op("StopGradient", shape=rules.unchanged, dtype=rules.same_dtype(), kernel=lambda ctx, x: x,
                  grad=lambda op, dy: [None])  # the gradient stops here by definition


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


Shape = op("Shape", shape=lambda args, attrs: (args[0].rank,), dtype=rules.attr_dtype("out_type"),
           kernel=lambda ctx, x, out_type: ctx.xp.asarray(x.shape, dtype=out_type.np),
           grad=NOT_DIFFERENTIABLE, const_value=_shape_value)
Size = op("Size", shape=rules.scalar, dtype=rules.attr_dtype("out_type"),
          kernel=lambda ctx, x, out_type: ctx.xp.asarray(x.size, dtype=out_type.np), grad=NOT_DIFFERENTIABLE,
          const_value=lambda args, attrs: None if rules.num_elements(args[0].shape) is None
          else np.asarray(rules.num_elements(args[0].shape), attrs["out_type"].np))
Rank = op("Rank", shape=rules.scalar, dtype=lambda args, attrs: dtypes.int32,
          kernel=lambda ctx, x: ctx.xp.asarray(x.ndim, dtype=np.int32), grad=NOT_DIFFERENTIABLE,
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
    total = rules.num_elements(x.shape)
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


def shape_of(x: Tensor) -> Tensor:
    """x's shape as an int32 vector: a constant when it is fully known at build time."""
    if x._shape is not None and None not in x._shape:
        return convert_to_tensor(np.asarray(x._shape, np.int32))
    return shape(x)


def _reshape_back(op, dy):
    """Gradient of shape-only changes (reshape, expand_dims, squeeze): dy in the input's shape."""
    return [reshape(dy, shape_of(op.inputs[0]))] + [None] * (len(op.inputs) - 1)


Reshape = op("Reshape", shape=_reshape_shape, dtype=lambda args, attrs: args[0].dtype, grad=_reshape_back,
             kernel=lambda ctx, x, target: x.reshape(tuple(int(d) for d in target)))


def reshape(tensor, shape, name=None):
    target = convert_to_tensor(shape, dtype=dtypes.int32) if not isinstance(shape, Tensor) else shape
    return apply_op("Reshape", (convert_to_tensor(tensor), target), {}, name).outputs[0]


# -- dimension shuffles ------------------------------------------------------------------------
def _expand_dims_shape(args, attrs):
    shape = args[0].shape
    if shape is None:
        return None
    axis = rules.normalize_axis(attrs["axis"], len(shape) + 1)
    return shape[:axis] + (1,) + shape[axis:]


ExpandDims = op("ExpandDims", shape=_expand_dims_shape, dtype=rules.same_dtype(), grad=_reshape_back,
                kernel=lambda ctx, x, axis: ctx.xp.expand_dims(x, axis))


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
             kernel=lambda ctx, x, axis: ctx.xp.squeeze(x, axis=axis))


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
    if sorted(perm) != list(range(len(shape))):
        raise ShapeError(f"perm {list(perm)} is not a permutation of the {len(shape)} dimensions")
    return tuple(shape[p] for p in perm)


def _transpose_grad(op, dy):
    perm = op.attrs["perm"]
    return [transpose(dy, None if perm is None else tuple(int(p) for p in np.argsort(perm)))]


Transpose = op("Transpose", shape=_transpose_shape, dtype=rules.same_dtype(), grad=_transpose_grad,
               kernel=lambda ctx, x, perm: ctx.xp.transpose(x, perm))


def transpose(a, perm=None, name="transpose"):
    attrs = {"perm": None if perm is None else tuple(int(p) for p in perm)}
    return apply_op("Transpose", (convert_to_tensor(a),), attrs, name).outputs[0]


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
            index.append(slice(None if begin_mask & bit else b, None if end_mask & bit else e, s))
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
            if isinstance(item, slice):
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
    grad = apply_op("StridedSliceGrad", (shape_of(op.inputs[0]), dy), dict(op.attrs), "StridedSliceGrad")
    return [grad.outputs[0]]


StridedSlice = op("StridedSlice", shape=_strided_slice_shape, dtype=rules.same_dtype(),
                  kernel=_strided_slice_kernel, grad=_strided_slice_grad)


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
        elif isinstance(item, slice):
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
