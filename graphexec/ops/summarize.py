"""Text of tensor values as TF's printing ops write them (tf.Print, tf.Assert: the v1 style; tf.print: v2).

Numbers follow TF's C++ formatting, not numpy's: a float is the shortest of "%.6g" / "%.9g" (doubles:
"%.15g" / "%.17g") that reads back to the same value, booleans are 1 and 0, half floats print as floats.
"""
from __future__ import annotations

import numpy as np

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\"": "\\\"", "'": "\\'", "\\": "\\\\"}


def _escaped(text: str) -> str:
    """C-style escapes of control characters and quotes (TF's Utf8SafeCEscape)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return "".join(out)


def _float_text(value, short: int, long: int, kind) -> str:
    text = f"{value:.{short}g}"
    if np.isfinite(value) and kind(float(text)) != value:
        text = f"{value:.{long}g}"
    return text


def element_text(value, quoted: bool = False) -> str:
    """One element, as TF's PrintOneElement writes it (`quoted`: v2 quotes strings)."""
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return f'"{_escaped(value)}"' if quoted else _escaped(value)
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, np.float64):
        return _float_text(float(value), 15, 17, float)
    if isinstance(value, (np.floating, float)):
        return _float_text(float(value), 6, 9, np.float32)
    return str(value)


def summarize_v1(array, summarize: int) -> str:
    """tf.Print / tf.Assert style: the first `summarize` elements in row-major order, "..." for the rest."""
    array = np.asarray(array)
    flat = array.reshape(-1)
    limit = flat.size if summarize < 0 else min(summarize, flat.size)
    out: list[str] = []
    if array.ndim == 0:
        out.extend(element_text(flat[i]) for i in range(limit))
    else:
        _dim_v1(array.shape, 0, flat, limit, [0], out)
    if flat.size > limit:
        out.append("...")
    return "".join(out)


def _dim_v1(shape, dim, flat, limit, index, out) -> None:
    if index[0] >= limit:
        return
    if dim == len(shape) - 1:
        for i in range(shape[dim]):
            if index[0] >= limit:
                if dim != 0:
                    out.append("...")
                return
            if i:
                out.append(" ")
            out.append(element_text(flat[index[0]]))
            index[0] += 1
        return
    for _ in range(shape[dim]):
        opened = index[0] < limit
        if opened:
            out.append("[")
        _dim_v1(shape, dim + 1, flat, limit, index, out)
        if opened:
            out.append("]")


def summarize_v2(array, summarize: int) -> str:
    """tf.print style: numpy-like nesting, `summarize` elements at each end of every dimension."""
    array = np.asarray(array)
    if array.ndim == 0:
        return element_text(array[()], quoted=True)
    ends = max(array.shape) if summarize < 0 else summarize
    out: list[str] = []
    _dim_v2(array, (), ends, out)
    return "".join(out)


def _spacing(dim: int, rank: int) -> str:
    if dim == rank - 1:
        return " "
    return "\n" * (rank - dim - 1) + " " * (dim + 1)


def _dim_v2(array, prefix: tuple, ends: int, out: list) -> None:
    dim, rank = len(prefix), array.ndim
    if dim == rank:
        out.append(element_text(array[prefix], quoted=True))
        return
    out.append("[")
    count = array.shape[dim]
    for i in range(min(ends, count)):
        if i:
            out.append(_spacing(dim, rank))
        _dim_v2(array, prefix + (i,), ends, out)
    if count > 2 * ends:
        out.append(_spacing(dim, rank) + "...")
    for i in range(max(ends, count - ends), count):
        out.append(_spacing(dim, rank))
        _dim_v2(array, prefix + (i,), ends, out)
    out.append("]")
