"""Checking and converting fed values against the static type of the tensor they feed."""
from __future__ import annotations

import numpy as np

from graphexec import errors, ir


def convert_feed(value, expected: ir.TensorType, tensor_name: str) -> np.ndarray:
    """The fed value as an array of the expected dtype; a wrong dtype or shape names both."""
    target = expected.dtype.np
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.dtype != target:
        if not _convertible(array, value, target):
            raise errors.InvalidArgumentError(
                None, tensor_name,
                f"Cannot feed a value of dtype {array.dtype.name} and shape {list(array.shape)} to tensor "
                f"'{tensor_name}', which has dtype {expected.dtype.name} and shape {ir.format_shape(expected.shape)}")
        array = array.astype(target)
    shape = expected.shape
    if shape is not None and (len(shape) != array.ndim or any(d is not None and d != a
                                                              for d, a in zip(shape, array.shape))):
        raise errors.InvalidArgumentError(
            None, tensor_name,
            f"Cannot feed value of shape {list(array.shape)} for Tensor '{tensor_name}', which has shape "
            f"{ir.format_shape(expected.shape)}")
    return array


def _convertible(array: np.ndarray, original, target: np.dtype) -> bool:
    if array.dtype == object or array.dtype.kind in "USV":
        return False
    if not isinstance(original, (np.ndarray, np.generic)):  # Python numbers and lists convert like TF
        if array.dtype.kind == "f" and target.kind in "iub":
            return bool(np.all(np.mod(array, 1) == 0)) and target.kind != "b"
        return not (array.dtype.kind in "iuf" and target.kind == "b")
    return np.can_cast(array.dtype, target, casting="same_kind")
