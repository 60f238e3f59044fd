"""Element types, with TF1 names (tf.float32) and string spellings ("float", "int32")."""
from __future__ import annotations

import builtins

import numpy as np


class DType:
    """An element type. Instances are unique per type, so compare with `is` or `==`."""

    __slots__ = ("name", "np")

    def __init__(self, name: str, np_dtype):
        self.name = name
        self.np = np.dtype(np_dtype)

    @property
    def as_numpy_dtype(self):
        return self.np.type

    is_floating = property(lambda self: self.np.kind == "f")
    is_integer = property(lambda self: self.np.kind in "iu")
    is_bool = property(lambda self: self.np.kind == "b")
    is_numeric = property(lambda self: self.np.kind in "iuf")

    @property
    def base_dtype(self) -> DType:
        return self

    @property
    def size(self) -> int:
        return self.np.itemsize

    @property
    def min(self):
        return np.finfo(self.np).min if self.is_floating else np.iinfo(self.np).min

    @property
    def max(self):
        return np.finfo(self.np).max if self.is_floating else np.iinfo(self.np).max

    def __repr__(self) -> str:
        return f"tf.{self.name}"

    def __reduce__(self):
        return (as_dtype, (self.name,))


float16 = half = DType("float16", np.float16)
float32 = DType("float32", np.float32)
float64 = double = DType("float64", np.float64)
int8 = DType("int8", np.int8)
int16 = DType("int16", np.int16)
int32 = DType("int32", np.int32)
int64 = DType("int64", np.int64)
uint8 = DType("uint8", np.uint8)
uint16 = DType("uint16", np.uint16)
bool = DType("bool", np.bool_)  # noqa: A001 - TF's public name

ALL = (float16, float32, float64, int8, int16, int32, int64, uint8, uint16, bool)
FLOATING = tuple(d for d in ALL if d.is_floating)
INTEGER = tuple(d for d in ALL if d.is_integer)
NUMERIC = FLOATING + INTEGER

_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"float": float32, "double": float64, "half": float16, "int": int32, "long": int64})
_BY_NUMPY = {d.np: d for d in ALL}


def as_dtype(value) -> DType:
    """DType from a DType, a name ("float32", "float"), a numpy dtype or a Python/numpy type."""
    if isinstance(value, DType):
        return value
    if isinstance(value, str):
        try:
            return _BY_NAME[value]
        except KeyError:
            raise TypeError(f"unknown dtype name {value!r}; known: {sorted(_BY_NAME)}") from None
    if value is float:
        return float32
    if value is int:
        return int32
    if value is builtins.bool:
        return bool
    try:
        return _BY_NUMPY[np.dtype(value)]
    except (KeyError, TypeError):
        raise TypeError(f"unsupported dtype {value!r}; supported: {[d.name for d in ALL]}") from None


def from_numpy(np_dtype) -> DType:
    return as_dtype(np.dtype(np_dtype))
