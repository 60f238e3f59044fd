"""Scratch memory that kernels reuse across steps instead of allocating.

`scratch` hands out one growing buffer per thread and dtype: a kernel's temporary (a convolution's
im2col columns) lives in memory that is already mapped and warm in the cache, rather than in a fresh
array that the OS must fault in page by page on every step. The buffer is the calling thread's, so
concurrent runs on a server's threads never share one; a kernel must be done with it before it returns
(kernels never nest, so one buffer per thread suffices).

`aligned_empty` makes arrays whose data starts on a cache line (64 bytes), as oneDNN's kernels read
fastest: numpy's own large arrays start 32 bytes into one (see runtime/conv_library.py).

`reusable` decides whether an array that nothing else references may be written over: the optimizers'
double buffers (ops/training_ops.py) rely on it.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

_local = threading.local()


def scratch(xp, shape: tuple, dtype) -> np.ndarray:
    """An uninitialized C-contiguous array of `shape`, valid until the calling kernel returns."""
    if xp is not np:  # CuPy has its own memory pool
        return xp.empty(shape, dtype=dtype)
    size = 1
    for d in shape:
        size *= d
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    dtype = np.dtype(dtype)
    buffer = buffers.get(dtype)
    if buffer is None or buffer.size < size:
        buffer = buffers[dtype] = np.empty(max(size, 1), dtype=dtype)
    return buffer[:size].reshape(shape)


ALIGNMENT = 64


def aligned_empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialized C-contiguous array of `shape` whose data starts at a multiple of ALIGNMENT bytes."""
    dtype = np.dtype(dtype)
    size = dtype.itemsize
    for d in shape:
        size *= d
    raw = np.empty(size + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + size].view(dtype).reshape(shape)


def aligned(array: np.ndarray) -> np.ndarray:
    """`array` if its data starts at a multiple of ALIGNMENT bytes, else a C-contiguous copy whose data does."""
    if array.ctypes.data % ALIGNMENT == 0:
        return array
    copy = aligned_empty(array.shape, array.dtype)
    np.copyto(copy, array)
    return copy


def _count(value) -> int:
    return sys.getrefcount(value)


def _base_count(array) -> int:
    return sys.getrefcount(array.base)  # numpy collapses views' bases: the owner of the memory


def _probe(array) -> int:
    return _count(array)  # the same call chain as in `reusable`


def _calibrate() -> tuple[int, int]:
    array = np.empty(1)  # held by this one local variable, as a caller's spare is
    sole = _probe(array)
    owner = np.empty(16, np.uint8)
    view = owner[8:].view(np.float64)  # and an array whose memory's owner only it references
    del owner
    return sole, _base_count(view)


# What `_count` reports inside `reusable` for an array that only the caller's one local variable
# references, and `_base_count` for an owner that only the array references: measured, since
# interpreters differ in how many references their call frames hold.
_SOLE, _SOLE_BASE = _calibrate()


def reusable(array, like) -> bool:
    """Whether `array`, held only by the caller's one local variable, may be overwritten with a value
    shaped like `like`: nothing else references it (no dict, list, view or exported buffer), it owns its
    memory or is the only holder of the writable array that does (aligned_empty's arrays; not values
    decoded from bytes, whose memory is immutable), and it has `like`'s shape and dtype."""
    if type(array) is not np.ndarray or not (array.flags.c_contiguous and array.shape == like.shape
                                             and array.dtype == like.dtype and _count(array) <= _SOLE):
        return False
    if array.base is None:
        return True
    # (array.base each time: a local name would hold one more reference to the owner than calibrated)
    return (type(array.base) is np.ndarray and array.base.base is None and array.base.flags.writeable
            and _base_count(array) <= _SOLE_BASE)
