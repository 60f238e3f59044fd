"""Turning Python values, numpy arrays and variables into graph tensors (tf.constant, convert_to_tensor)."""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.ir import ShapeAttr
from graphexec.framework import Tensor, apply_op
from graphexec.ops import rules
from graphexec.ops.registry import NOT_DIFFERENTIABLE, attr, op

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["constant", "convert_to_tensor"]

MAX_CONSTANT_BYTES = 2 << 30  # a graph constant above 2 GiB is a mistake: feed it instead


def _const_value(args, attrs):
    return attrs["value"]


Const = op("Const", shape=lambda args, attrs: attrs["value"].shape, dtype=rules.attr_dtype(),
           kernel=lambda ctx, value, dtype: ctx.from_host(value) if ctx.xp is not np else value,
           const_value=_const_value, grad=NOT_DIFFERENTIABLE, is_constant=True,
           inputs=(), attrs={"value": attr("tensor"), "dtype": attr("type")})


def numpy_value(value, dtype=None) -> np.ndarray:
    """numpy array with TF's defaults: Python floats -> float32, Python ints -> int32 (int64 if needed)."""
    if dtype is not None:
        dtype = dtypes.as_dtype(dtype)
    if dtype is dtypes.string or (dtype is None and _looks_like_strings(value)):
        try:
            return dtypes.string_array(value)
        except TypeError:
            raise TypeError(f"Cannot convert {value!r} to a tensor of dtype string") from None
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        array = np.asarray(value)
    else:
        array = np.asarray(value)
        if dtype is None:
            if array.dtype == np.float64:
                array = array.astype(np.float32)
            elif array.dtype.kind in "iu" and array.dtype != np.int32:
                fits = array.size == 0 or (array.min() >= -(2**31) and array.max() < 2**31)
                array = array.astype(np.int32 if fits else np.int64)
    if dtype is not None and array.dtype != dtype.np:
        if array.dtype.kind == "f" and dtype.is_integer and array.size and not np.all(np.mod(array, 1) == 0):
            raise TypeError(f"Cannot convert {value!r} to EagerTensor of dtype {dtype.name}")
        if array.dtype.kind == "b" and not dtype.is_bool and not isinstance(value, np.ndarray):
            raise TypeError(f"Cannot convert {value!r} to a tensor of dtype {dtype.name}")
        array = array.astype(dtype.np)
    if array.dtype == object or array.dtype.kind in "USV":
        raise TypeError(f"Cannot convert {value!r} to a tensor: unsupported element type {array.dtype}")
    dtypes.from_numpy(array.dtype)  # raises for unsupported types
    return array


def _looks_like_strings(value) -> bool:
    """str/bytes scalars, numpy str/bytes arrays, and (nested) lists whose first element is one."""
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, (str, bytes, np.str_, np.bytes_)):
        return True
    return isinstance(value, np.ndarray) and (value.dtype.kind in "SU" or (
        value.dtype == object and value.size > 0 and isinstance(value.reshape(-1)[0], (str, bytes))))


def constant(value, dtype=None, shape=None, name="Const", verify_shape=False):
    """tf.constant: a value baked into the graph; `shape` broadcasts a scalar or reshapes."""
    array = numpy_value(value, dtype)
    if shape is not None:
        shape = tuple(int(d) for d in shape)
        if array.size == 1:
            array = np.full(shape, array.reshape(()), dtype=array.dtype)
        elif array.size == int(np.prod(shape)) and not verify_shape:
            array = array.reshape(shape)
        else:
            raise TypeError(f"Expected Tensor's shape: {shape}, got {array.shape}.")
    if array.nbytes > MAX_CONSTANT_BYTES:
        raise ValueError(f"Cannot create a tensor proto whose content is larger than 2GB ({array.nbytes} bytes).")
    array = np.array(array, order="C")  # a private copy (the caller's array stays writable); scalars stay 0-d
    array.setflags(write=False)
    return apply_op("Const", (), {"value": array, "dtype": dtypes.from_numpy(array.dtype)}, name).outputs[0]


def convert_to_tensor(value, dtype=None, name=None, preferred_dtype=None) -> Tensor:
    """A Tensor for `value`; Python and numpy values become constants of `dtype` when given."""
    if isinstance(value, Tensor):
        if dtype is not None and dtypes.as_dtype(dtype) is not value.dtype:
            raise ValueError(f"Tensor conversion requested dtype {dtypes.as_dtype(dtype).name} for Tensor with "
                             f"dtype {value.dtype.name}: {value!r}")
        return value
    if hasattr(value, "_as_tensor"):
        return value._as_tensor(dtype)
    if isinstance(value, (list, tuple)) and any(isinstance(v, Tensor) or hasattr(v, "_as_tensor") for v in value):
        # a list holding tensors is packed (tf.stack); built by name, as the array family imports this module
        tensors = [convert_to_tensor(v, dtype) for v in value]
        return apply_op("Pack", tensors, {"axis": 0}, name or "packed").outputs[0]
    if dtype is None and preferred_dtype is not None:
        try:
            return constant(value, preferred_dtype, name=name or "Const")
        except (TypeError, ValueError):
            pass
    return constant(value, dtype, name=name or "Const")


def convert_pair(x, y):
    """Operands of a binary op: a Python/numpy side takes the dtype of the Tensor side, as in TF."""
    x_is_tensor = isinstance(x, Tensor) or hasattr(x, "_as_tensor")
    if x_is_tensor:
        x = convert_to_tensor(x)
        return x, convert_to_tensor(y, dtype=None if _is_tensorlike(y) else x.dtype)
    if _is_tensorlike(y):
        y = convert_to_tensor(y)
        return convert_to_tensor(x, dtype=y.dtype), y
    x = convert_to_tensor(x)
    return x, convert_to_tensor(y, dtype=x.dtype)


def _is_tensorlike(v) -> bool:
    return isinstance(v, Tensor) or hasattr(v, "_as_tensor")


MAX_DIM = 1 << 63  # a dimension is an int64


def shape_attr(shape) -> ShapeAttr:
    """A user's shape argument (None, list with None/-1 dims, TensorShape) as a shape attribute."""
    if shape is None:
        return ShapeAttr(None)
    dims = shape.dims if hasattr(shape, "dims") else shape
    if dims is None:
        return ShapeAttr(None)
    for d in dims:
        if d is not None and not -MAX_DIM <= int(d) < MAX_DIM:  # TF's message and class
            raise TypeError(f"Error converting {list(dims)} (arg name = shape) to a TensorShape: Value out of range: "
                            f"{int(d)}")
    return ShapeAttr([None if d is None or int(d) < 0 else int(d) for d in dims])
