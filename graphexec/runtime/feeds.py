"""Checking and converting fed values against the static type of the tensor they feed.

A failure names the fed tensor, the placeholder's line in the user's program when known, and both
types. Python numbers and lists are checked against the range of the placeholder's integer type instead
of wrapping (70000 fed as int16 is an error, as in TF); numpy values convert like numpy's astype,
as TF converts them.
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes, errors, ir

INT64_RANGE = (-(1 << 63), (1 << 64) - 1)  # what any integer tensor can hold (uint64's top included)


def convert_feed(value, expected: ir.TensorType, tensor_name: str, source: str = "") -> np.ndarray:
    """The fed value as an array of the expected dtype (Python values convert like TF); a wrong dtype
    or shape names both. `source`: file:line where the fed tensor was defined."""
    if expected.dtype is dtypes.string:
        return _string_feed(value, expected, tensor_name)
    if isinstance(value, np.ndarray):
        array = value
    else:
        try:
            array = np.asarray(value)
        except ValueError as exc:  # a ragged nested list: numpy's message, with the feed it was for
            raise ValueError(f"Cannot feed the value given for tensor '{tensor_name}'{_defined_at(source)}, which "
                             f"has shape {ir.format_shape(expected.shape)}: {exc}") from None
        if expected.dtype.np.kind in "iu" and array.dtype.kind in "iuO" and not isinstance(value, np.generic):
            _check_int_range(value, array, expected, tensor_name, source)
    if array.dtype != expected.dtype.np and _convertible(array, value, expected.dtype.np):
        array = array.astype(expected.dtype.np)
    check_feed(array, expected, tensor_name, source)
    return array


def check_feed(array: np.ndarray, expected: ir.TensorType, tensor_name: str, source: str = "") -> None:
    """An array fed as is (e.g. decoded from the wire) must have exactly the expected dtype and a
    compatible shape."""
    shape = expected.shape
    if array.dtype == expected.dtype.np and (shape is None or len(shape) == array.ndim):
        for declared, given in zip(shape or (), array.shape):  # (a loop, not all(): this runs every run)
            if declared is not None and declared != given:
                break
        else:
            return
    raise errors.InvalidArgumentError(
        None, tensor_name,
        f"Cannot feed a value of dtype {array.dtype.name} and shape {list(array.shape)} to tensor "
        f"'{tensor_name}'{_defined_at(source)}, which has dtype {expected.dtype.name} and shape "
        f"{ir.format_shape(shape)}")


def _defined_at(source: str) -> str:
    return f" (defined at {source})" if source else ""


def _check_int_range(value, array: np.ndarray, expected: ir.TensorType, tensor_name: str, source: str) -> None:
    """Python integers fed to an integer tensor must fit its type: TypeError (TF's class) when they do not,
    OverflowError when they fit no integer type at all."""
    if array.size == 0:
        return
    if array.dtype == object:
        if not all(isinstance(v, int) for v in array.flat):
            return  # not integers: check_feed reports the dtype
        low, high = min(array.flat), max(array.flat)
    else:
        low, high = int(array.min()), int(array.max())
    limits = np.iinfo(expected.dtype.np)
    if limits.min <= low and high <= limits.max:
        return
    worst = low if low < limits.min else high
    where = f"tensor '{tensor_name}'{_defined_at(source)}"
    if not INT64_RANGE[0] <= worst <= INT64_RANGE[1]:
        raise OverflowError(f"Cannot feed {worst} to {where}: it does not fit in 64 bits, and the tensor has dtype "
                            f"{expected.dtype.name} [{limits.min}, {limits.max}]")
    raise TypeError(f"Type of feed value {worst} with type {type(value).__name__} is not compatible with {where} of "
                    f"dtype {expected.dtype.name}: {worst} is outside [{limits.min}, {limits.max}]. Feed a numpy array "
                    f"to convert with wrap-around, or give the placeholder a larger type (e.g. int64).")


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
