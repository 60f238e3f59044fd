"""dtypes, shapes and tensors <-> protobuf, and DecodeError, the failure of every decoding step.

A Tensor travels as raw little-endian bytes; decoding is `np.frombuffer` over the received bytes
(a read-only view, no copy). String tensors are the exception: their length-prefixed content
(dtypes.string_content) decodes into an object array of bytes.
"""
from __future__ import annotations

import functools
import math
import sys

import numpy as np

from graphexec import dtypes, errors
from graphexec.proto.v1 import graph_pb2 as pb


class DecodeError(errors.InvalidArgumentError):
    """A malformed message: always INVALID_ARGUMENT, never a crash."""

    def __init__(self, message):
        super().__init__(None, None, message)


# -- dtypes and shapes ------------------------------------------------------------------------------
_ENUM_BY_DTYPE = {d: pb.DataType.Value("DATA_TYPE_" + d.name.upper()) for d in dtypes.ALL}
_DTYPE_BY_ENUM = {v: k for k, v in _ENUM_BY_DTYPE.items()}
_NP_BY_ENUM = {v: k.np.newbyteorder("<") for k, v in _ENUM_BY_DTYPE.items()}


def dtype_enum(dtype: dtypes.DType) -> int:
    return _ENUM_BY_DTYPE[dtype]


def numpy_dtype_enum(np_dtype) -> int:
    return _ENUM_BY_DTYPE[dtypes.from_numpy(np_dtype)]


def dtype_from_enum(value: int) -> dtypes.DType:
    try:
        return _DTYPE_BY_ENUM[value]
    except KeyError:
        raise DecodeError(f"unknown or unset dtype {value}") from None


def numpy_dtype(value: int) -> np.dtype:
    """The little-endian numpy dtype of a DataType enum value."""
    try:
        return _NP_BY_ENUM[value]
    except KeyError:
        raise DecodeError(f"unknown or unset tensor dtype {value}") from None


def shape_to_proto(shape, out: pb.TensorShape) -> pb.TensorShape:
    if shape is None:
        out.unknown_rank = True
    else:
        out.dims.extend(-1 if d is None else d for d in shape)
    return out


def shape_from_proto(msg: pb.TensorShape):
    if msg.unknown_rank:
        if len(msg.dims):
            raise DecodeError("a shape of unknown rank cannot list dimensions")
        return None
    dims = tuple(msg.dims)
    if not dims:
        return dims
    lowest = min(dims)
    if lowest < -1:
        raise DecodeError(f"invalid dimension in shape {list(dims)}")
    return tuple(None if d == -1 else d for d in dims) if lowest == -1 else dims


# -- tensors ----------------------------------------------------------------------------------------
def little_endian(array) -> np.ndarray:
    """A C-contiguous little-endian array with the same values (no copy when it already is one)."""
    array = np.asarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)  # (ascontiguousarray makes 0-d 1-d)


# numpy dtype -> enum of the dtypes whose arrays travel as their own bytes (native little-endian): a
# graph upload encodes every constant, and looking the enum up through graphexec's DType costs more.
_ENUM_BY_NATIVE = {np.dtype(d.np): _ENUM_BY_DTYPE[dtypes.from_numpy(d.np)] for d in dtypes.ALL
                   if d.np != object and np.dtype(d.np).byteorder in "=|" and sys.byteorder == "little"}


def tensor_to_proto(array, out: pb.Tensor | None = None) -> pb.Tensor:
    out = out if out is not None else pb.Tensor()
    if type(array) is np.ndarray and array.flags.c_contiguous:
        enum = _ENUM_BY_NATIVE.get(array.dtype)
        if enum is not None:  # the common case: already the bytes that travel
            out.dtype = enum
            out.shape.extend(array.shape)
            out.content = array.tobytes()
            return out
    array = little_endian(array)
    out.dtype = _ENUM_BY_DTYPE[dtypes.from_numpy(array.dtype)]
    out.shape.extend(array.shape)
    out.content = dtypes.string_content(array) if array.dtype == object else array.tobytes()
    return out


@functools.lru_cache(maxsize=4096)
def _layout(dtype_value: int, shape: tuple) -> tuple[np.dtype, int]:
    """(numpy dtype, element count) of a tensor's dtype enum and shape, checked (cached: runs repeat
    their shapes, and these checks cost more than the view itself)."""
    dtype = numpy_dtype(dtype_value)
    if shape and min(shape) < 0:
        raise DecodeError(f"tensor shape {list(shape)} has a negative dimension")
    return dtype, math.prod(shape)


def checked_array(buffer, dtype_value: int, shape, offset: int, length: int) -> np.ndarray:
    """A read-only view of `length` bytes of `buffer` at `offset`, which must fit dtype and shape exactly."""
    dtype, count = _layout(dtype_value, shape)
    if dtype == object:
        try:
            return dtypes.strings_from_content(memoryview(buffer)[offset:offset + length], count, shape)
        except ValueError as exc:
            raise DecodeError(f"string tensor of shape {list(shape)}: {exc}") from None
    if count * dtype.itemsize != length:
        raise DecodeError(f"tensor of dtype {dtype.name} and shape {list(shape)} needs "
                          f"{count * dtype.itemsize} bytes of content, got {length}")
    array = np.ndarray(shape, dtype, buffer, offset)  # a view (np.frombuffer(...).reshape() costs 3x as much)
    # A view whose elements do not start on their own size's boundary (content sits wherever the message
    # put it) is copied: numpy hands only aligned arrays to BLAS, so a misaligned feed would take numpy's
    # own loops and give other last bits than the same program in-process.
    if array.flags.aligned:
        return array
    array = array.copy()
    array.flags.writeable = False  # read-only, as the views are
    return array


def tensor_from_proto(msg: pb.Tensor) -> np.ndarray:
    """A read-only array viewing the message's content bytes."""
    content = msg.content
    return checked_array(content, msg.dtype, tuple(msg.shape), 0, len(content))


def is_shell(dtype_value: int, shape, content_length: int) -> bool:
    """A content-less element standing for a tensor that travels in parts (an empty tensor is not one)."""
    if content_length:
        return False
    dtype, count = _layout(dtype_value, tuple(shape))
    return count * dtype.itemsize != 0


def tensors_from_protos(messages) -> list:
    """Arrays viewing the contents of parsed Tensor messages; (dtype, shape) for content-less shells."""
    tensors = []
    for t in messages:
        content, dtype_value, shape = t.content, t.dtype, tuple(t.shape)
        if not content and is_shell(dtype_value, shape, 0):
            tensors.append((dtype_value, shape))
        else:
            tensors.append(checked_array(content, dtype_value, shape, 0, len(content)))
    return tensors


def tensor_to_bytes(array) -> bytes:
    """A serialized Tensor message (e.g. a variable's value in Redis)."""
    return tensor_to_proto(array).SerializeToString()


def tensor_from_bytes(data: bytes) -> np.ndarray:
    return tensor_from_proto(pb.Tensor.FromString(data))
