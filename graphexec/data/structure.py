"""Element specs of tf.data: a nested structure (tuples, lists, dicts) of `Spec` leaves, and the numpy
values of elements, which follow TF's conversion rules (Python floats are float32, ints int32)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphexec import dtypes
from graphexec.framework import Tensor, TensorShape
from graphexec.ops.structure import flatten, pack_sequence_as


@dataclass(frozen=True)
class Spec:
    """The dtype and (possibly partial) shape of one component of a dataset's elements."""
    dtype: dtypes.DType
    shape: tuple  # ints, None where unknown; None for an unknown rank

    def merged(self, other: Spec) -> Spec:
        """The most specific spec both agree with (dims that differ become unknown)."""
        if self.shape is None or other.shape is None or len(self.shape) != len(other.shape):
            return Spec(self.dtype, None)
        return Spec(self.dtype, tuple(a if a == b else None for a, b in zip(self.shape, other.shape)))


def as_array(value, dtype=None) -> np.ndarray:
    """A component value as numpy, with TF's dtype for Python scalars and lists (float32, int32, bytes)."""
    if isinstance(value, np.ndarray) and dtype is None:
        return value
    if dtype is not None:
        dtype = dtypes.as_dtype(dtype)
        if dtype is dtypes.string:
            return _strings(value)
        return np.asarray(value, dtype=dtype.np)
    array = np.asarray(value)
    if array.dtype.kind in "USO":
        return _strings(value)
    if array.dtype == np.float64 and not isinstance(value, np.generic):
        return array.astype(np.float32)
    if array.dtype == np.int64 and not isinstance(value, np.generic):
        return array.astype(np.int32)
    return array


def _strings(value) -> np.ndarray:
    array = np.asarray(value, dtype=object)
    flat = array.reshape(-1)
    for i, item in enumerate(flat):
        if isinstance(item, str):
            flat[i] = item.encode()
        elif isinstance(item, np.bytes_):
            flat[i] = bytes(item)
    return flat.reshape(array.shape)


def spec_of(value) -> Spec:
    if isinstance(value, Tensor):
        return Spec(value.dtype, None if value._shape is None else tuple(value._shape))
    array = as_array(value)
    return Spec(dtype_of(array), array.shape)


def dtype_of(array: np.ndarray) -> dtypes.DType:
    return dtypes.string if array.dtype == object else dtypes.as_dtype(array.dtype)


def to_shape(shape) -> TensorShape:
    return TensorShape(None if shape is None else list(shape))


def normalize_shape(shape):
    if shape is None:
        return None
    if isinstance(shape, TensorShape):
        return None if shape.ndims is None else tuple(shape.as_list())
    return tuple(None if d is None or d == -1 else int(d) for d in shape)


def typed_structure(output_types, output_shapes):
    """The Spec structure of TF's (output_types, output_shapes) pair (shapes may be None: unknown)."""
    types = flatten(output_types)
    specs = [Spec(dtypes.as_dtype(t), None) for t in types]
    structure = pack_sequence_as(output_types, specs)
    shapes = along(structure, output_shapes) if output_shapes is not None else [None] * len(types)
    return pack_sequence_as(output_types, [Spec(s.dtype, normalize_shape(shape)) for s, shape in zip(specs, shapes)])


def along(structure, value) -> list:
    """The leaves of `value`, a structure that mirrors the element's (its leaves are shapes or scalars), one
    per component; a lone leaf stands for every component."""
    if isinstance(structure, Spec):
        return [value]
    if isinstance(value, (tuple, list, dict)) and not _is_shape(value) and not isinstance(structure, Spec):
        keys = sorted(structure) if isinstance(structure, dict) else range(len(structure))
        return [leaf for k in keys for leaf in along(structure[k], value[k])]
    return [value] * len(flatten(structure))


def _is_shape(value) -> bool:
    if isinstance(value, TensorShape):
        return True
    return isinstance(value, (list, tuple)) and all(d is None or isinstance(d, (int, np.integer)) for d in value)



__all__ = ["Spec", "along", "as_array", "dtype_of", "flatten", "normalize_shape", "pack_sequence_as", "spec_of", "to_shape", "typed_structure"]
