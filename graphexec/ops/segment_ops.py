"""Segments, partitions and masks: segment_sum/segment_mean (sorted segment ids), unique,
dynamic_partition/dynamic_stitch, boolean_mask and sequence_mask.

Gradients are dense, as everywhere in graphexec. unique's idx, dynamic_partition's partitions and
the ids and indices inputs have none (as in TF).
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.framework import apply_op, name_scope
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.emit import emit
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.ops.shape_inputs import check_index_dtype, shape_of

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["boolean_mask", "dynamic_partition", "dynamic_stitch", "segment_max", "segment_mean", "segment_min",
           "segment_sum", "sequence_mask", "unique"]


# -- SegmentSum / SegmentMean / SegmentMax / SegmentMin: sorted ids, one output row per id up to the last --
def _segment_shape(args, attrs):
    data, ids = args
    check_index_dtype(ids, "segment_ids")
    if ids.rank not in (None, 1):
        raise ShapeError(f"segment_ids must be a vector, got shape {rules.fmt(ids.shape)}")
    if data.shape is None:
        return None
    if not data.shape:
        raise ShapeError("data must be at least rank 1")
    if ids.shape is not None and None not in (ids.shape[0], data.shape[0]) and ids.shape[0] != data.shape[0]:
        raise ShapeError(f"segment_ids should be the same size as dimension 0 of data: {rules.fmt(ids.shape)} vs "
                         f"{rules.fmt(data.shape)}")
    rows = None if ids.value is None or ids.value.size == 0 else int(ids.value[-1]) + 1
    return (0 if ids.value is not None and ids.value.size == 0 else rows,) + data.shape[1:]


def _checked_ids(ctx, data, ids) -> tuple[np.ndarray, int]:
    host = np.asarray(ctx.to_host(ids))
    if host.shape[0] != data.shape[0]:
        raise ValueError(f"segment_ids should be the same size as dimension 0 of data: {host.shape[0]} vs "
                         f"{data.shape[0]}")
    if host.size and (host[0] < 0 or np.any(np.diff(host) < 0)):
        raise ValueError("segment ids must be sorted and non-negative")
    return host, int(host[-1]) + 1 if host.size else 0


def _segment_reduce(ufunc, initial):
    def kernel(ctx, data, segment_ids):
        xp = ctx.xp
        host, rows = _checked_ids(ctx, data, segment_ids)
        if initial is None:
            out = xp.zeros((rows,) + data.shape[1:], dtype=data.dtype)
        else:  # empty segments are 0 in TF's segment_max/min output
            out = xp.full((rows,) + data.shape[1:], initial(data.dtype), dtype=data.dtype)
        getattr(xp, ufunc).at(out, xp.asarray(host), data)
        if initial is not None:
            present = np.zeros(rows, dtype=bool)
            present[host] = True
            out[xp.asarray(~present)] = 0
        return out

    return kernel


def _segment_mean(ctx, data, segment_ids):
    total = _segment_reduce("add", None)(ctx, data, segment_ids)
    host, rows = _checked_ids(ctx, data, segment_ids)
    counts = np.maximum(np.bincount(host, minlength=rows), 1).astype(data.dtype)
    return total / ctx.xp.asarray(counts).reshape((rows,) + (1,) * (data.ndim - 1))


def _float_or_number(args, attrs):
    return rules.same_dtype(*dtypes.NUMERIC)(args[:1], attrs)


def _segment_sum_grad(op, dz):
    return [emit("GatherV2", dz, op.inputs[1], 0), None]


def _segment_mean_grad(op, dz):
    data, ids = op.inputs
    ones = emit("OnesLike", emit("Cast", ids, DstT=dz.dtype))
    counts = emit("SegmentSum", ones, ids)
    rank = data._shape and len(data._shape)
    scale = emit("Reshape", counts, np.asarray([-1] + [1] * ((rank or 1) - 1), np.int32))
    return [emit("GatherV2", emit("RealDiv", dz, scale), ids, 0), None]


def _segment_select_grad(op, dz):
    """max/min: the gradient goes to every element equal to its segment's result (ties share it, as TF)."""
    data, ids = op.inputs
    chosen = emit("GatherV2", op.outputs[0], ids, 0)
    wins = emit("Cast", emit("Equal", data, chosen), DstT=dz.dtype)
    ties = emit("GatherV2", emit("SegmentSum", wins, ids), ids, 0)
    return [emit("Mul", emit("RealDiv", wins, ties), emit("GatherV2", dz, ids, 0)), None]


def _lowest(dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _highest(dtype):
    return np.inf if dtype.kind == "f" else np.iinfo(dtype).max


SegmentSum = op("SegmentSum", shape=_segment_shape, dtype=_float_or_number, kernel=_segment_reduce("add", None),
                grad=_segment_sum_grad, inputs=("data", "segment_ids"))
SegmentMean = op("SegmentMean", shape=_segment_shape, dtype=lambda args, attrs: rules.same_dtype(*dtypes.FLOATING)(
                     args[:1], attrs),
                 kernel=_segment_mean, grad=_segment_mean_grad, inputs=("data", "segment_ids"))
SegmentMax = op("SegmentMax", shape=_segment_shape, dtype=_float_or_number,
                kernel=_segment_reduce("maximum", _lowest), grad=_segment_select_grad, inputs=("data", "segment_ids"))
SegmentMin = op("SegmentMin", shape=_segment_shape, dtype=_float_or_number,
                kernel=_segment_reduce("minimum", _highest), grad=_segment_select_grad, inputs=("data", "segment_ids"))


def _segment_api(op_type):
    def fn(data, segment_ids, name=None):
        return apply_op(op_type, (convert_to_tensor(data), convert_to_tensor(segment_ids)), {},
                        name or op_type).outputs[0]

    fn.__name__ = op_type
    return fn


segment_sum = _segment_api("SegmentSum")
segment_mean = _segment_api("SegmentMean")
segment_max = _segment_api("SegmentMax")
segment_min = _segment_api("SegmentMin")


# -- Unique: values in order of first appearance, and each element's index into them --------------------------
def _unique_shape(args, attrs):
    if args[0].rank not in (None, 1):
        raise ShapeError(f"unique takes a vector, got shape {rules.fmt(args[0].shape)}")
    return [(None,), args[0].shape or (None,)]


def _unique_dtype(args, attrs):
    if attrs["out_idx"] not in (dtypes.int32, dtypes.int64):
        raise ShapeError(f"out_idx must be int32 or int64, got {attrs['out_idx'].name}")
    return [args[0].dtype, attrs["out_idx"]]


def _unique(ctx, x, out_idx):
    host = np.asarray(ctx.to_host(x))
    values, first, inverse = np.unique(host, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # TF keeps the order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return [ctx.from_host(values[order]), ctx.from_host(rank[inverse.reshape(-1)].astype(out_idx.np))]


Unique = op("Unique", shape=_unique_shape, dtype=_unique_dtype, kernel=_unique, grad=NOT_DIFFERENTIABLE,
            inputs=("x",), attrs={"out_idx": attr("type", dtypes.int32)})


class UniqueResult(tuple):
    """(y, idx), also readable by name as TF's namedtuple."""

    y = property(lambda self: self[0])
    idx = property(lambda self: self[1])


def unique(x, out_idx=dtypes.int32, name=None):
    outputs = apply_op("Unique", (convert_to_tensor(x),), {"out_idx": dtypes.as_dtype(out_idx)},
                       name or "Unique").outputs
    return UniqueResult(outputs)


# -- DynamicPartition and DynamicStitch (each the other's adjoint) -------------------------------------------
def _partition_shape(args, attrs):
    data, partitions = args
    if partitions.dtype is not dtypes.int32:
        raise ShapeError(f"partitions must be int32, got {partitions.dtype.name}")
    if attrs["num_partitions"] < 1:
        raise ShapeError(f"num_partitions must be at least 1, got {attrs['num_partitions']}")
    if data.shape is None or partitions.shape is None:
        return [None] * attrs["num_partitions"]
    prefix = data.shape[:len(partitions.shape)]
    if len(prefix) != len(partitions.shape) or any(a is not None and b is not None and a != b
                                                   for a, b in zip(prefix, partitions.shape)):
        raise ShapeError(f"partitions shape {rules.fmt(partitions.shape)} must be a prefix of data shape "
                         f"{rules.fmt(data.shape)}")
    return [(None,) + data.shape[len(partitions.shape):]] * attrs["num_partitions"]


def _partition(ctx, data, partitions, num_partitions):
    host = np.asarray(ctx.to_host(partitions))
    if host.size and (host.min() < 0 or host.max() >= num_partitions):
        bad = host.min() if host.min() < 0 else host.max()
        raise ValueError(f"partitions has value {bad}, which is not in [0, {num_partitions})")
    flat = data.reshape((-1,) + data.shape[host.ndim:])
    keys = host.reshape(-1)
    return [flat[ctx.xp.asarray(np.flatnonzero(keys == p))] for p in range(num_partitions)]


def _partition_grad(op, *dzs):
    data, partitions = op.inputs
    positions = emit("Reshape", emit("Range", 0, emit("Size", partitions, out_type=dtypes.int32), 1),
                     shape_of(partitions))
    pieces = emit("DynamicPartition", positions, partitions, num_partitions=op.attrs["num_partitions"])
    pieces = pieces if isinstance(pieces, list) else [pieces]
    grads = [dz if dz is not None else emit("ZerosLike", out) for dz, out in zip(dzs, op.outputs)]
    return [emit("Reshape", emit("DynamicStitch", *pieces, *grads), shape_of(data)), None]


DynamicPartition = op("DynamicPartition", shape=_partition_shape,
                      dtype=lambda args, attrs: [args[0].dtype] * attrs["num_partitions"], kernel=_partition,
                      grad=_partition_grad, inputs=("data", "partitions"),
                      attrs={"num_partitions": attr("int")})


def dynamic_partition(data, partitions, num_partitions, name=None):
    outputs = apply_op("DynamicPartition", (convert_to_tensor(data), convert_to_tensor(partitions, dtypes.int32)),
                       {"num_partitions": int(num_partitions)}, name or "DynamicPartition").outputs
    return list(outputs)


def _stitch_split(args):
    if len(args) % 2:
        raise ShapeError(f"dynamic_stitch takes as many indices as data tensors, got {len(args)} inputs")
    half = len(args) // 2
    return args[:half], args[half:]


def _stitch_shape(args, attrs):
    indices, data = _stitch_split(args)
    for i in indices:
        if i.dtype is not dtypes.int32:
            raise ShapeError(f"indices must be int32, got {i.dtype.name}")
    tails = {d.shape[len(i.shape):] for i, d in zip(indices, data) if d.shape is not None and i.shape is not None}
    if len(tails) > 1:
        raise ShapeError(f"data shapes must be indices shapes plus one common tail, got tails "
                         f"{', '.join(rules.fmt(t) for t in tails)}")
    if not tails:
        return None
    values = [i.value for i in indices]
    rows = None if any(v is None for v in values) else max((int(v.max()) + 1 for v in values if v.size), default=0)
    return (rows,) + tails.pop()


def _stitch_dtype(args, attrs):
    return rules.same_dtype()(_stitch_split(args)[1], attrs)


def _stitch(ctx, *args):
    indices, data = _stitch_split(args)
    hosts = [np.asarray(ctx.to_host(i)).reshape(-1) for i in indices]
    rows = max((int(h.max()) + 1 for h in hosts if h.size), default=0)
    tail = data[0].shape[indices[0].ndim:]
    out = ctx.xp.zeros((rows,) + tuple(tail), dtype=data[0].dtype)
    for h, d in zip(hosts, data):  # later inputs win where indices repeat (TF's rule)
        out[ctx.xp.asarray(h)] = d.reshape((-1,) + tuple(tail))
    return out


def _stitch_grad(op, dz):
    indices, _ = _stitch_split(list(op.inputs))
    return [None] * len(indices) + [emit("GatherV2", dz, i, 0) for i in indices]


DynamicStitch = op("DynamicStitch", shape=_stitch_shape, dtype=_stitch_dtype, kernel=_stitch, grad=_stitch_grad,
                   inputs=("*indices_and_data",))


def dynamic_stitch(indices, data, name=None):
    if len(indices) != len(data):
        raise ValueError(f"dynamic_stitch takes as many indices as data tensors, got {len(indices)} and {len(data)}")
    tensors = [convert_to_tensor(i, dtypes.int32) for i in indices] + [convert_to_tensor(d) for d in data]
    return apply_op("DynamicStitch", tensors, {}, name or "DynamicStitch").outputs[0]


# -- boolean_mask and sequence_mask: compositions, as in TF ---------------------------------------------------
def boolean_mask(tensor, mask, name="boolean_mask", axis=None):
    """The elements (or slices) of `tensor` where `mask` is true: mask's dims flattened into one, starting at
    `axis` (0 by default); differentiable in `tensor` through gather."""
    with name_scope(name, "boolean_mask") as scope:
        tensor, mask = convert_to_tensor(tensor), convert_to_tensor(mask, dtypes.bool)
        if mask._shape is None or tensor._shape is None:
            raise ValueError("boolean_mask needs the ranks of tensor and mask known when the graph is built")
        axis = int(axis or 0)
        mask_rank = len(mask._shape)
        if mask_rank == 0:
            raise ValueError("mask cannot be scalar.")
        dims = tensor._shape[axis:axis + mask_rank]
        if any(a is not None and b is not None and a != b for a, b in zip(dims, mask._shape)):
            raise ValueError(f"Shapes {list(tensor._shape)} and {list(mask._shape)} are incompatible")
        shape = shape_of(tensor)
        lead = emit("StridedSlice", shape, begin=(0,), end=(axis,), strides=(1,), begin_mask=1, end_mask=0,
                    ellipsis_mask=0, new_axis_mask=0, shrink_axis_mask=0)
        rest = emit("StridedSlice", shape, begin=(axis + mask_rank,), end=(0,), strides=(1,), begin_mask=0,
                    end_mask=1, ellipsis_mask=0, new_axis_mask=0, shrink_axis_mask=0)
        flat = emit("Reshape", tensor, emit("ConcatV2", lead, np.asarray([-1], np.int32), rest, 0))
        kept = emit("Reshape", emit("Where", emit("Reshape", mask, np.asarray([-1], np.int32))),
                    np.asarray([-1], np.int32))
        return emit("GatherV2", flat, kept, axis, name=scope)


def sequence_mask(lengths, maxlen=None, dtype=dtypes.bool, name=None):
    """mask[..., j] = j < lengths[...]; maxlen defaults to max(lengths)."""
    with name_scope(name, "SequenceMask") as scope:
        lengths = convert_to_tensor(lengths)
        if maxlen is None:
            maxlen = emit("Max", lengths, axis=None, keepdims=False)
        maxlen = convert_to_tensor(maxlen, dtype=lengths.dtype)
        positions = emit("Range", emit("Cast", 0, DstT=lengths.dtype), maxlen, emit("Cast", 1, DstT=lengths.dtype))
        mask = emit("Less", positions, emit("ExpandDims", lengths, axis=-1))
        dtype = dtypes.as_dtype(dtype)
        return mask if dtype is dtypes.bool else emit("Cast", mask, DstT=dtype, name=scope)



