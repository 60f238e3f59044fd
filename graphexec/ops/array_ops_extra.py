"""Array construction and rearrangement: zeros/ones/fill/range/linspace, concat/stack/unstack/split,
slice/gather/tile/pad/one_hot/broadcast_to, and Where (indices of true elements).

As in TF, arguments that decide an output shape (dims, multiples, paddings, begin/size, axis of
concat) are graph inputs; shape rules read their build-time value (`Aval.value`) when it is known
and leave dims unknown otherwise.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from graphexec import dtypes
from graphexec.framework import Tensor, apply_op, name_scope
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor, numpy_value
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, op

INDEX_TYPES = (dtypes.int32, dtypes.int64)


# -- helpers for shape-determining inputs ----------------------------------------------------------
def int_tensor(value, what: str) -> Tensor:
    """A shape-like argument (list, array, Tensor or Variable) as an int32/int64 tensor."""
    if is_tensorlike(value):
        value = convert_to_tensor(value)
        if value.dtype not in INDEX_TYPES:
            raise TypeError(f"{what} must be int32 or int64, got {value.dtype.name}")
        return value
    if hasattr(value, "as_list"):  # a TensorShape
        value = value.as_list()
    if isinstance(value, (list, tuple)) and builtins.any(is_tensorlike(v) for v in value):
        return convert_to_tensor(value, name=what)  # e.g. [tf.shape(x)[0], 3]: packed at run time
    array = np.asarray(value)
    if array.size and array.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integers, got {value!r}")
    return convert_to_tensor(array.astype(np.int64) if array.size and array.max(initial=0) >= 2**31
                             else array.astype(np.int32), name=what)


def _vector_value(arg, what: str, length=None):
    """The known integer vector of a shape-like input, or None; checks its rank (and length)."""
    if arg.rank is not None and arg.rank != 1:
        raise ShapeError(f"{what} must be a vector, got a tensor of shape {rules.fmt(arg.shape)}")
    if arg.value is None:
        return None
    values = [int(v) for v in arg.value]
    if length is not None and len(values) != length:
        raise ShapeError(f"{what} must have {length} elements, got {values}")
    return values


def _vector_length(arg):
    """Number of elements of a vector input, when known (even if its values are not)."""
    if arg.shape is None or len(arg.shape) != 1:
        return None
    return arg.shape[0]


def _scalar_value(arg, what: str):
    if arg.rank not in (None, 0):
        raise ShapeError(f"{what} must be a scalar, got a tensor of shape {rules.fmt(arg.shape)}")
    return None if arg.value is None else arg.value.item()


def check_index_dtype(arg, what: str):
    if arg.dtype not in INDEX_TYPES:
        raise ShapeError(f"{what} must be int32 or int64, got {arg.dtype.name}")


def host_ints(ctx, array) -> tuple:
    """Values of a small index array as Python ints (copied off the GPU when it lives there)."""
    return tuple(int(v) for v in np.asarray(ctx.to_host(array)).reshape(-1))


def is_tensorlike(value) -> bool:
    """A Tensor, or something that reads as one (a Variable)."""
    return isinstance(value, Tensor) or hasattr(value, "_as_tensor")


def _axis_tensor(axis, name="axis") -> Tensor:
    return convert_to_tensor(axis) if is_tensorlike(axis) else convert_to_tensor(int(axis), dtype=dtypes.int32,
                                                                                  name=name)


def _axis_of(arg, rank, what="axis"):
    """A known scalar axis input normalized against `rank`, or None."""
    value = _scalar_value(arg, what)
    if value is None:
        return None
    return rules.normalize_axis(int(value), rank, what)


def _outputs(pieces: list):
    """Kernel results of a multi-output op: a list, except that one output is returned as itself
    (the executor's convention for single-output steps)."""
    return pieces[0] if len(pieces) == 1 else pieces


# -- gradient rules (see graphexec.gradients): grad(op, *output_grads) -> one gradient per input --------
def _known_axis(op, axis_input, rank):
    axis = _axis_of(axis_input.aval, rank)
    if axis is None:
        raise NotImplementedError(f"the gradient of {op.type} '{op.name}' needs its axis known when the graph is built")
    return axis


def _rank_of(op, t):
    if t._shape is None:
        raise NotImplementedError(f"the gradient of {op.type} '{op.name}' needs the rank of {t.name} to be known")
    return len(t._shape)


def _dim_sizes(tensors, axis):
    """The tensors' sizes along `axis`: a Python list when known, else an int32 tensor computed at run time."""
    from graphexec.ops.array_ops import shape_of

    dims = [t._shape[axis] for t in tensors]
    return dims if None not in dims else stack([shape_of(t)[axis] for t in tensors])


def _filled_in(grads, outputs):
    """Output gradients with zeros where an output received none (for ops that rejoin their outputs)."""
    return [zeros_like(o) if g is None else g for g, o in zip(grads, outputs)]


def _concat_grad(op, dz):
    *values, axis_input = op.inputs
    axis = _known_axis(op, axis_input, _rank_of(op, values[0]))
    return [*split(dz, _dim_sizes(values, axis), axis=axis, num=len(values)), None]


def _split_grad(op, *dzs):
    return [None, concat(_filled_in(dzs, op.outputs), op.inputs[0])]


def _splitv_grad(op, *dzs):
    return [concat(_filled_in(dzs, op.outputs), op.inputs[2]), None, None]


def _slice_grad(op, dz):
    """dz padded with zeros back to the input's extent."""
    from graphexec.ops.array_ops import shape_of
    from graphexec.ops.math_ops import cast, subtract

    x, begin, _ = op.inputs
    after = subtract(subtract(cast(shape_of(x), begin.dtype), begin), cast(shape_of(dz), begin.dtype))
    return [pad(dz, stack([begin, after], axis=1)), None, None]


def _gather_grad(op, dz):
    """Scatter-add dz back to the gathered rows (a dense gradient; TF would return IndexedSlices)."""
    from graphexec.ops.array_ops import shape_of, transpose
    from graphexec.ops.grad_ops import unsorted_segment_sum

    params, indices, axis_input = op.inputs
    rank = _rank_of(op, params)
    axis = _known_axis(op, axis_input, rank)
    rows = shape_of(params)[axis]
    if axis == 0:
        return [unsorted_segment_sum(dz, indices, rows), None, None]
    index_rank = _rank_of(op, indices)
    indices_first = [*builtins.range(axis, axis + index_rank), *builtins.range(axis),
                     *builtins.range(axis + index_rank, rank - 1 + index_rank)]
    summed = unsorted_segment_sum(transpose(dz, indices_first), indices, rows)
    return [transpose(summed, [*builtins.range(1, axis + 1), 0, *builtins.range(axis + 1, rank)]), None, None]


def _tile_grad(op, dz):
    """dz as [m0, d0, m1, d1, ...] summed over the m axes."""
    from graphexec.ops.array_ops import reshape, shape_of, transpose
    from graphexec.ops.math_ops import cast, reduce_sum

    x, multiples = op.inputs
    rank = _rank_of(op, x)
    interleaved = reshape(transpose(stack([cast(multiples, dtypes.int32), shape_of(x)])), [-1])
    return [reduce_sum(reshape(dz, interleaved), axis=list(builtins.range(0, 2 * rank, 2))), None]


def _pad_grad(op, dz):
    from graphexec.ops.array_ops import shape_of

    x, paddings = op.inputs[:2]
    return [slice(dz, paddings[:, 0], shape_of(x)), None, None]


def _mirror_pad_grad(op, dz):
    return [apply_op("MirrorPadGrad", (dz, op.inputs[1]), dict(op.attrs)).outputs[0], None]


def _broadcast_to_grad(op, dz):
    from graphexec.ops.grad_ops import sum_to_shape

    return [sum_to_shape(dz, op.inputs[0]), None]


def _fill_grad(op, dz):
    from graphexec.ops.math_ops import reduce_sum

    return [None, reduce_sum(dz)]


def _value_independent(op, *dzs):
    """zeros_like/ones_like: the output does not depend on the input's values."""
    return [None] * len(op.inputs)


# -- Fill, ZerosLike, OnesLike -----------------------------------------------------------------------
def known_elements(shape_tensor: Tensor):
    """What is known while building of a shape vector's elements, as a partial shape (TF's
    constant_value_as_shape): tf.shape(x) of a partly known x, or [tf.shape(x)[0], 3]."""
    if shape_tensor._value is not None:
        return tuple(int(v) for v in shape_tensor._value)
    producer = shape_tensor.op
    if producer.type == "Shape":
        return producer.inputs[0]._shape
    if producer.type == "Pack" and producer.attrs["axis"] == 0:
        return tuple(None if t._value is None else int(t._value) for t in producer.inputs)
    return None


def with_known_elements(out: Tensor, shape_tensor: Tensor) -> Tensor:
    """`out` (shaped by `shape_tensor`) with the dims that are known of that shape while building."""
    known = known_elements(shape_tensor)
    if known is not None and out._shape is not None and len(known) == len(out._shape):
        out.set_shape(tuple(None if d is None or d < 0 else d for d in known))
    return out


def dims_shape(dims_arg, what="dims"):
    """Output shape given by a vector input: exact when its value is known, else only its rank."""
    values = _vector_value(dims_arg, what)
    if values is None:
        length = _vector_length(dims_arg)
        return None if length is None else (None,) * length
    if any(v < 0 for v in values):
        raise ShapeError(f"{what} must be non-negative, got {values}")
    return tuple(values)


def _fill_shape(args, attrs):
    dims, value = args
    check_index_dtype(dims, "dims")
    _scalar_value(value, "value")
    return dims_shape(dims)


def _fill(ctx, dims, value):
    return ctx.xp.full(host_ints(ctx, dims), value, dtype=value.dtype)


Fill = op("Fill", shape=_fill_shape, dtype=lambda args, attrs: args[1].dtype, kernel=_fill, grad=_fill_grad)
ZerosLike = op("ZerosLike", shape=rules.unchanged, dtype=rules.same_dtype(), grad=_value_independent,
               kernel=lambda ctx, x: ctx.xp.zeros_like(x))
OnesLike = op("OnesLike", shape=rules.unchanged, dtype=rules.same_dtype(), grad=_value_independent,
              kernel=lambda ctx, x: ctx.xp.ones_like(x))


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
    from graphexec.ops.array_ops import shape as shape_of

    tensor = convert_to_tensor(tensor)
    if dtype is not None and dtypes.as_dtype(dtype) is not tensor.dtype:
        with name_scope(name, default_name) as scope:
            return _filled(shape_of(tensor), fill_value, dtype, scope, None)
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
        return (builtins.abs(limit - start) + builtins.abs(delta) - 1) // builtins.abs(delta)
    span = np.asarray(limit, np_dtype) - np.asarray(start, np_dtype)
    return int(math.ceil(builtins.abs(float(span / np.asarray(delta, np_dtype)))))


def _range_shape(args, attrs):
    values = [_scalar_value(a, what) for a, what in zip(args, ("start", "limit", "delta"))]
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
           grad=NOT_DIFFERENTIABLE)

_RANGE_HIERARCHY = (dtypes.int32, dtypes.int64, dtypes.float32, dtypes.float64)


def range(start, limit=None, delta=1, dtype=None, name="range"):  # noqa: A001 - TF's name
    """tf.range: like Python's range; the dtype is the widest of the arguments' unless given."""
    from graphexec.ops.math_ops import cast

    if limit is None:
        start, limit = 0, start
    with name_scope(name) as scope:
        args = [convert_to_tensor(v, name=n) for v, n in ((start, "start"), (limit, "limit"), (delta, "delta"))]
        if dtype is None:
            unknown = [a.dtype.name for a in args if a.dtype not in _RANGE_HIERARCHY]
            if unknown:
                raise TypeError(f"range arguments must be int32, int64, float32 or float64, got {unknown}")
            dtype = max((a.dtype for a in args), key=_RANGE_HIERARCHY.index)
        args = [cast(a, dtype) for a in args]
        return apply_op("Range", args, {}, scope).outputs[0]


def _linspace_shape(args, attrs):
    start, stop, num = args
    _scalar_value(start, "start")
    _scalar_value(stop, "stop")
    check_index_dtype(num, "num")
    count = _scalar_value(num, "num")
    if count is not None and count < 1:
        raise ShapeError(f"Requires num > 0: {count}")
    return (count,)


def _linspace(ctx, start, stop, num):
    count = int(num)
    if count < 1:
        raise ValueError(f"Requires num > 0: {count}")
    return ctx.xp.linspace(start.item(), stop.item(), count).astype(start.dtype, copy=False)


LinSpace = op("LinSpace", shape=_linspace_shape, kernel=_linspace, grad=NOT_DIFFERENTIABLE,
              dtype=lambda args, attrs: rules.same_dtype(*dtypes.FLOATING)(args[:2], attrs))


def linspace(start, stop, num, name=None):
    with name_scope(name, "LinSpace") as scope:
        start = convert_to_tensor(start, name="start")
        stop = convert_to_tensor(stop, dtype=None if is_tensorlike(stop) else start.dtype, name="stop")
        return apply_op("LinSpace", (start, stop, int_tensor(num, "num")), {}, scope).outputs[0]


lin_space = linspace


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
    axis = _axis_of(axis_arg, rank)
    if axis is None:
        return (None,) * rank
    out = []
    for dim in builtins.range(rank):
        column = [s[dim] for s in shapes if s is not None]
        if dim == axis:
            out.append(None if None in column or len(column) < len(shapes) else builtins.sum(column))
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


ConcatV2 = op("ConcatV2", shape=_concat_shape, kernel=_concat, grad=_concat_grad,
              dtype=lambda args, attrs: rules.same_dtype()(args[:-1], attrs))


def concat(values, axis, name="concat"):
    tensors = [convert_to_tensor(v) for v in values]
    if not tensors:
        raise ValueError("concat needs at least one tensor")
    if len(tensors) == 1:  # as in TF: nothing to join
        from graphexec.ops.array_ops import identity

        return identity(tensors[0], name=name)
    with name_scope(name) as scope:
        return apply_op("ConcatV2", (*tensors, _axis_tensor(axis)), {}, scope).outputs[0]


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
          kernel=lambda ctx, *values, axis: ctx.xp.stack(values, axis=axis))


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
    return _outputs([ctx.xp.take(x, i, axis=axis) for i in builtins.range(num)])


Unpack = op("Unpack", shape=_unpack_shapes, kernel=_unpack,
            grad=lambda op, *dzs: [stack(_filled_in(dzs, op.outputs), axis=op.attrs["axis"])],
            dtype=lambda args, attrs: [args[0].dtype] * attrs["num"])


def unstack(value, num=None, axis=0, name="unstack"):
    value = convert_to_tensor(value)
    if num is None:
        shape = value._shape
        num = shape[rules.normalize_axis(int(axis), len(shape))] if shape else None
        if num is None:
            raise ValueError(f"Cannot infer num from shape {value.shape}")
    return list(apply_op("Unpack", (value,), {"num": int(num), "axis": int(axis)}, name).outputs)


# -- Split, SplitV ---------------------------------------------------------------------------------
def _split_shapes(args, attrs):
    axis_arg, value = args
    check_index_dtype(axis_arg, "axis")
    num = attrs["num_split"]
    shape = value.shape
    if shape is None:
        return [None] * num
    axis = _axis_of(axis_arg, len(shape))
    if axis is None:
        return [(None,) * len(shape)] * num
    dim = shape[axis]
    if dim is not None and dim % num:
        raise ShapeError(f"Number of ways to split should evenly divide the split dimension, but got "
                         f"split_dim {axis} (size = {dim}) and num_split {num}")
    piece = None if dim is None else dim // num
    return [shape[:axis] + (piece,) + shape[axis + 1:]] * num


def _split(ctx, axis, value, num_split):
    axis = int(axis)
    if value.shape[axis] % num_split:
        raise ValueError(f"Number of ways to split should evenly divide the split dimension, but got split_dim "
                         f"{axis} (size = {value.shape[axis]}) and num_split {num_split}")
    return _outputs(ctx.xp.split(value, num_split, axis=axis))


Split = op("Split", shape=_split_shapes, kernel=_split, grad=_split_grad,
           dtype=lambda args, attrs: [args[1].dtype] * attrs["num_split"])


def _resolve_sizes(sizes, dim):
    """size_splits with its one -1 (if any) filled in from the split dimension."""
    if sizes.count(-1) > 1:
        raise ShapeError(f"only one size_splits value can be -1, got {sizes}")
    if -1 in sizes:
        if dim is None:
            return [None if s == -1 else s for s in sizes]
        rest = dim - builtins.sum(s for s in sizes if s != -1)
        if rest < 0:
            raise ShapeError(f"size_splits {sizes} add up to more than the split dimension ({dim})")
        return [rest if s == -1 else s for s in sizes]
    if dim is not None and builtins.sum(sizes) != dim:
        raise ShapeError(f"size_splits {sizes} must add up to the split dimension ({dim})")
    return sizes


def _splitv_shapes(args, attrs):
    value, sizes_arg, axis_arg = args
    check_index_dtype(axis_arg, "axis")
    num = attrs["num_split"]
    shape = value.shape
    sizes = _vector_value(sizes_arg, "size_splits", num)
    if shape is None:
        return [None] * num
    axis = _axis_of(axis_arg, len(shape))
    if axis is None:
        return [(None,) * len(shape)] * num
    pieces = [None] * num if sizes is None else _resolve_sizes(sizes, shape[axis])
    return [shape[:axis] + (p,) + shape[axis + 1:] for p in pieces]


def _splitv(ctx, value, size_splits, axis, num_split):
    axis = int(axis)
    try:
        sizes = _resolve_sizes(list(host_ints(ctx, size_splits)), value.shape[axis])
    except ShapeError as exc:
        raise ValueError(str(exc)) from None
    bounds = np.cumsum(sizes)[:-1].tolist()
    return _outputs(ctx.xp.split(value, bounds, axis=axis))


SplitV = op("SplitV", shape=_splitv_shapes, kernel=_splitv, grad=_splitv_grad,
            dtype=lambda args, attrs: [args[0].dtype] * attrs["num_split"])


def split(value, num_or_size_splits, axis=0, num=None, name="split"):
    value = convert_to_tensor(value)
    with name_scope(name) as scope:
        axis_tensor = _axis_tensor(axis, "split_dim")
        if isinstance(num_or_size_splits, (int, np.integer)):
            attrs = {"num_split": int(num_or_size_splits)}
            return list(apply_op("Split", (axis_tensor, value), attrs, scope).outputs)
        sizes = int_tensor(num_or_size_splits, "size_splits")
        if num is None:
            num = _vector_length(sizes.aval)
            if num is None:
                raise ValueError(f"Cannot infer num from shape {sizes.shape}")
        return list(apply_op("SplitV", (value, sizes, axis_tensor), {"num_split": int(num)}, scope).outputs)


# -- Slice, GatherV2 --------------------------------------------------------------------------------
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
    rank = x.rank if x.rank is not None else _vector_length(begin_arg)
    begin = _vector_value(begin_arg, "begin", rank)
    size = _vector_value(size_arg, "size", rank)
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


Slice = op("Slice", shape=_slice_shape, dtype=lambda args, attrs: args[0].dtype, kernel=_slice, grad=_slice_grad)


def slice(input_, begin, size, name=None):  # noqa: A001 - TF's name
    x = convert_to_tensor(input_)
    with name_scope(name, "Slice") as scope:
        return apply_op("Slice", (x, int_tensor(begin, "begin"), int_tensor(size, "size")), {}, scope).outputs[0]


def _gather_shape(args, attrs):
    params, indices, axis_arg = args
    check_index_dtype(indices, "indices")
    check_index_dtype(axis_arg, "axis")
    if params.shape is None or indices.shape is None:
        return None
    if not params.shape:
        raise ShapeError("params must be at least 1 dimensional")
    axis = _axis_of(axis_arg, len(params.shape))
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


GatherV2 = op("GatherV2", shape=_gather_shape, dtype=lambda args, attrs: args[0].dtype, kernel=_gather,
              grad=_gather_grad)


def gather(params, indices, validate_indices=None, name=None, axis=None, batch_dims=0):
    if batch_dims:
        raise NotImplementedError("gather with batch_dims != 0 is not supported")
    params = convert_to_tensor(params)
    with name_scope(name, "GatherV2") as scope:
        indices = convert_to_tensor(indices, name="indices")
        axis_tensor = _axis_tensor(0 if axis is None else axis)
        return apply_op("GatherV2", (params, indices, axis_tensor), {}, scope).outputs[0]


# -- Tile, Pad, BroadcastTo -----------------------------------------------------------------------------
def _tile_shape(args, attrs):
    x, multiples_arg = args
    check_index_dtype(multiples_arg, "multiples")
    rank = x.rank if x.rank is not None else _vector_length(multiples_arg)
    multiples = _vector_value(multiples_arg, "multiples", rank)
    if rank is None:
        return None
    if multiples is None:
        return (None,) * rank
    if any(m < 0 for m in multiples):
        raise ShapeError(f"multiples must be non-negative, got {multiples}")
    shape = x.shape if x.shape is not None else (None,) * rank
    return tuple(None if d is None else d * m for d, m in zip(shape, multiples))


Tile = op("Tile", shape=_tile_shape, dtype=lambda args, attrs: args[0].dtype, grad=_tile_grad,
          kernel=lambda ctx, x, multiples: ctx.xp.tile(x, host_ints(ctx, multiples)))


def tile(input, multiples, name=None):  # noqa: A002 - TF's name
    x = convert_to_tensor(input)
    with name_scope(name, "Tile") as scope:
        return apply_op("Tile", (x, int_tensor(multiples, "multiples")), {}, scope).outputs[0]


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
    _scalar_value(args[2], "constant_values")
    return _padded_shape(args[0], _paddings_value(args), args[1])


def _pad(ctx, x, paddings, constant_values):
    pairs = np.asarray(ctx.to_host(paddings)).tolist()
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


PadV2 = op("PadV2", shape=_pad_shape, kernel=_pad, grad=_pad_grad,
           dtype=lambda args, attrs: rules.same_dtype()([args[0], args[2]], attrs))
MirrorPad = op("MirrorPad", shape=_mirror_pad_shape, dtype=lambda args, attrs: args[0].dtype, kernel=_mirror_pad,
               grad=_mirror_pad_grad)


def pad(tensor, paddings, mode="CONSTANT", name=None, constant_values=0):
    x = convert_to_tensor(tensor)
    mode = mode.upper()
    if mode not in ("CONSTANT", "REFLECT", "SYMMETRIC"):
        raise ValueError(f"Unknown padding mode: {mode}")
    with name_scope(name, "Pad") as scope:
        pads = int_tensor(paddings, "paddings")
        if mode != "CONSTANT":
            return apply_op("MirrorPad", (x, pads), {"mode": mode}, scope).outputs[0]
        fill_value = convert_to_tensor(constant_values, dtype=None if is_tensorlike(constant_values) else x.dtype,
                                       name="constant_values")
        return apply_op("PadV2", (x, pads, fill_value), {}, scope).outputs[0]


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


BroadcastTo = op("BroadcastTo", shape=_broadcast_to_shape, dtype=lambda args, attrs: args[0].dtype,
                 grad=_broadcast_to_grad,
                 kernel=lambda ctx, x, shape: ctx.xp.broadcast_to(x, host_ints(ctx, shape)))


def broadcast_to(input, shape, name=None):  # noqa: A002 - TF's name
    x = convert_to_tensor(input)
    with name_scope(name, "BroadcastTo") as scope:
        target = int_tensor(shape, "shape")
        return with_known_elements(apply_op("BroadcastTo", (x, target), {}, scope).outputs[0], target)


# -- OneHot ------------------------------------------------------------------------------------------
def _one_hot_shape(args, attrs):
    indices, depth_arg, on_value, off_value = args
    if indices.dtype not in (dtypes.uint8, dtypes.int32, dtypes.int64):
        raise ShapeError(f"indices must be uint8, int32 or int64, got {indices.dtype.name}")
    check_index_dtype(depth_arg, "depth")
    _scalar_value(on_value, "on_value")
    _scalar_value(off_value, "off_value")
    depth = _scalar_value(depth_arg, "depth")
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
           kernel=lambda ctx, condition: ctx.xp.argwhere(condition).astype(np.int64, copy=False))


def where_indices(condition, name=None):
    """Coordinates of the true (non-zero) elements of `condition`, as int64 [num_true, rank]."""
    return apply_op("Where", (convert_to_tensor(condition),), {}, name or "Where").outputs[0]
