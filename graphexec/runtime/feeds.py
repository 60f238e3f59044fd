"""Checking and converting fed values against the static type of the tensor they feed."""
from __future__ import annotations

import numpy as np

from graphexec import dtypes, errors, ir


def convert_feed(value, expected: ir.TensorType, tensor_name: str) -> np.ndarray:
    """The fed value as an array of the expected dtype (Python values convert like TF); a wrong dtype
    or shape names both."""
    if expected.dtype is dtypes.string:
        return _string_feed(value, expected, tensor_name)
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.dtype != expected.dtype.np and _convertible(array, value, expected.dtype.np):
        array = array.astype(expected.dtype.np)
    check_feed(array, expected, tensor_name)
    return array


def check_feed(array: np.ndarray, expected: ir.TensorType, tensor_name: str) -> None:
    """An array fed as is (e.g. decoded from the wire) must have exactly the expected dtype and a
    compatible shape."""
    shape = expected.shape
    if array.dtype == expected.dtype.np and (shape is None or (
            len(shape) == array.ndim and all(d is None or d == a for d, a in zip(shape, array.shape)))):
        return
    raise errors.InvalidArgumentError(
        None, tensor_name,
        f"Cannot feed a value of dtype {array.dtype.name} and shape {list(array.shape)} to tensor "
        f"'{tensor_name}', which has dtype {expected.dtype.name} and shape {ir.format_shape(shape)}")


def _string_feed(value, expected: ir.TensorType, tensor_name: str) -> np.ndarray:
    """str and bytes (and arrays of them) feed a tf.string tensor as an object array of bytes."""
    try:
        array = dtypes.string_array(value)
    except TypeError as exc:
        raise errors.InvalidArgumentError(None, tensor_name, f"Cannot feed {value!r} to string tensor "
                                                             f"'{tensor_name}': {exc}") from None
    check_feed(array, expected, tensor_name)
    return array


def _convertible(array: np.ndarray, original, target: np.dtype) -> bool:
    if array.dtype == object or array.dtype.kind in "USV":
        return False
    if not isinstance(original, (np.ndarray, np.generic)):  # Python numbers and lists convert like TF
        if array.dtype.kind == "f" and target.kind in "iub":
            return bool(np.all(np.mod(array, 1) == 0)) and target.kind != "b"
        return not (array.dtype.kind in "iuf" and target.kind == "b")
    return np.can_cast(array.dtype, target, casting="same_kind")
