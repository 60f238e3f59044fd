"""Element types, with TF1 names (tf.float32) and string spellings ("float", "int32").

tf.string tensors are numpy object arrays of `bytes` (as TF1's sess.run returns them). On the wire
and in checkpoints their content is, per element in row-major order, a u32 little-endian byte length
then the bytes (`string_content` / `strings_from_content`; graphexec.v1.Tensor documents it too).
"""
from __future__ import annotations

import builtins
import struct

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
    is_string = property(lambda self: self.np.kind == "O")

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
string = DType("string", object)  # elements are Python bytes

ALL = (float16, float32, float64, int8, int16, int32, int64, uint8, uint16, bool, string)
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


# -- string tensors -----------------------------------------------------------------------------------
_LENGTH = struct.Struct("<I")


def as_bytes(element) -> bytes:
    """One string element as bytes: str is UTF-8 encoded (as TF does), bytes-likes kept."""
    if isinstance(element, str):
        return element.encode()
    if isinstance(element, (bytes, bytearray, memoryview, np.bytes_)):
        return bytes(element)
    raise TypeError(f"expected bytes or str for a tf.string element, got {type(element).__name__} {element!r}")


def string_array(value) -> np.ndarray:
    """An object array of bytes from nested lists, str/bytes scalars, or numpy str/bytes/object arrays."""
    array = np.asarray(value, dtype=object)
    out = np.empty(array.shape, dtype=object)
    flat_out, flat_in = out.reshape(-1), array.reshape(-1)
    for i in range(flat_in.size):
        flat_out[i] = as_bytes(flat_in[i])
    return out


def string_content(array: np.ndarray) -> bytes:
    """The wire/checkpoint content of a string tensor: per element, u32 LE length then its bytes."""
    parts = []
    for element in np.asarray(array, dtype=object).reshape(-1):
        data = as_bytes(element)
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def strings_from_content(buffer, count: int, shape) -> np.ndarray:
    """The object array of `count` bytes elements encoded in `buffer` (ValueError when it does not fit)."""
    view = memoryview(buffer).cast("B")
    out = np.empty(count, dtype=object)
    pos, end = 0, len(view)
    for i in range(count):
        if pos + 4 > end:
            raise ValueError(f"string tensor content ends after {i} of {count} elements")
        (length,) = _LENGTH.unpack_from(view, pos)
        pos += 4
        if pos + length > end:
            raise ValueError(f"string element {i} of {length} bytes runs past the end of the content")
        out[i] = bytes(view[pos:pos + length])
        pos += length
    if pos != end:
        raise ValueError(f"string tensor content has {end - pos} bytes after its {count} elements")
    return out.reshape(shape)
