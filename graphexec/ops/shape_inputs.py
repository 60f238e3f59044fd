"""Inputs whose values decide an output's shape: dims, multiples, paddings, begin/size, an axis.

As in TF they are graph inputs, not attrs. Wrappers turn the user's lists into int tensors
(`int_tensor`); shape rules read their build-time value when it is known (`vector_value`,
`scalar_value`, `axis_of`) and leave dims unknown otherwise; kernels read them off the device
(`host_ints`); gradient rules that need one known while building say so (`known_axis`).
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.framework import Tensor
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.emit import emit
from graphexec.ops.registry import ShapeError

INDEX_TYPES = (dtypes.int32, dtypes.int64)


# -- building: user values as tensors -------------------------------------------------------------
def is_tensorlike(value) -> bool:
    """A Tensor, or something that reads as one (a Variable)."""
    return isinstance(value, Tensor) or hasattr(value, "_as_tensor")


def int_tensor(value, what: str) -> Tensor:
    """A shape-like argument (list, array, Tensor or Variable) as an int32/int64 tensor."""
    if is_tensorlike(value):
        value = convert_to_tensor(value)
        if value.dtype not in INDEX_TYPES:
            raise TypeError(f"{what} must be int32 or int64, got {value.dtype.name}")
        return value
    if hasattr(value, "as_list"):  # a TensorShape
        value = value.as_list()
    if isinstance(value, (list, tuple)) and any(is_tensorlike(v) for v in value):
        return convert_to_tensor(value, name=what)  # e.g. [tf.shape(x)[0], 3]: packed at run time
    return convert_to_tensor(int_array(value, what), name=what)


def int_array(value, what: str) -> np.ndarray:
    """Python or numpy integers as int32, or int64 when they need it; a huge Python int is an
    OverflowError naming the argument rather than a dimension wrapped around."""
    array = np.asarray(value)
    if array.size and array.dtype.kind not in "iu":
        if array.dtype == object and all(isinstance(v, int) for v in array.flat):
            raise OverflowError(f"{what} {value!r}: {max(array.flat, key=abs)} does not fit in int64")
        raise TypeError(f"{what} must be integers, got {value!r}")
    if array.dtype.kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:  # would wrap negative
        raise OverflowError(f"{what} {value!r}: {int(array.max())} does not fit in int64")
    return array.astype(np.int64) if array.size and array.max(initial=0) >= 2**31 else array.astype(np.int32)


def axis_tensor(axis, name="axis") -> Tensor:
    return convert_to_tensor(axis) if is_tensorlike(axis) else convert_to_tensor(int(axis), dtype=dtypes.int32,
                                                                                  name=name)


def shape_of(x: Tensor) -> Tensor:
    """x's shape as an int32 vector: a constant when it is fully known at build time."""
    if x._shape is not None and None not in x._shape:
        return convert_to_tensor(np.asarray(x._shape, np.int32))
    return emit("Shape", x, out_type=dtypes.int32)


def dim_of(x: Tensor, axis: int):
    """x's size along `axis`: a Python int when known at build time, else an int32 scalar."""
    if x._shape is not None and x._shape[axis] is not None:
        return x._shape[axis]
    # a shrunk axis reads only `begin`, so a negative axis needs no special end
    return emit("StridedSlice", shape_of(x), begin=(axis,), end=(axis + 1,), strides=(1,), begin_mask=0, end_mask=0,
                ellipsis_mask=0, new_axis_mask=0, shrink_axis_mask=1)


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


# -- shape rules: what is known of such an input ----------------------------------------------------
def check_index_dtype(arg, what: str):
    if arg.dtype not in INDEX_TYPES:
        raise ShapeError(f"{what} must be int32 or int64, got {arg.dtype.name}")


def vector_value(arg, what: str, length=None):
    """The known integer vector of a shape-like input, or None; checks its rank (and length)."""
    if arg.rank is not None and arg.rank != 1:
        raise ShapeError(f"{what} must be a vector, got a tensor of shape {rules.fmt(arg.shape)}")
    if arg.value is None:
        return None
    values = [int(v) for v in arg.value]
    if length is not None and len(values) != length:
        raise ShapeError(f"{what} must have {length} elements, got {values}")
    return values


def vector_length(arg):
    """Number of elements of a vector input, when known (even if its values are not)."""
    if arg.shape is None or len(arg.shape) != 1:
        return None
    return arg.shape[0]


def scalar_value(arg, what: str):
    if arg.rank not in (None, 0):
        raise ShapeError(f"{what} must be a scalar, got a tensor of shape {rules.fmt(arg.shape)}")
    return None if arg.value is None else arg.value.item()


def axis_of(arg, rank, what="axis"):
    """A known scalar axis input normalized against `rank`, or None."""
    value = scalar_value(arg, what)
    if value is None:
        return None
    return rules.normalize_axis(int(value), rank, what)


def dims_shape(dims_arg, what="dims"):
    """Output shape given by a vector input: exact when its value is known, else only its rank."""
    values = vector_value(dims_arg, what)
    if values is None:
        length = vector_length(dims_arg)
        return None if length is None else (None,) * length
    if any(v < 0 for v in values):
        raise ShapeError(f"{what} must be non-negative, got {values}")
    return tuple(values)


# -- kernels and gradient rules ----------------------------------------------------------------------
def host_ints(ctx, array) -> tuple:
    """Values of a small index array as Python ints (copied off the GPU when it lives there)."""
    return tuple(int(v) for v in np.asarray(ctx.to_host(array)).reshape(-1))


def rank_of(op, t) -> int:
    """The build-time rank of `t`, which the gradient of `op` needs."""
    if t._shape is None:
        raise NotImplementedError(f"the gradient of {op.type} '{op.name}' needs the rank of {t.name} to be known")
    return len(t._shape)


def known_axis(op, axis_input: Tensor, rank) -> int:
    """The build-time value of `op`'s axis input, which its gradient needs."""
    axis = axis_of(axis_input.aval, rank)
    if axis is None:
        raise NotImplementedError(f"the gradient of {op.type} '{op.name}' needs its axis known when the graph is built")
    return axis
