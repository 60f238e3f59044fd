"""String ops over tf.string tensors (numpy object arrays of bytes): as_string, join, split, length,
case, to_number, regex_replace, substr, strip.

Strings live on the host (placement runs every step touching one on the CPU), so kernels use numpy
directly rather than ctx.xp. None of these ops has a gradient, as in TF.

tf.string_split and tf.strings.split return a SparseTensor (indices int64 [n, 2], values string [n],
dense_shape int64 [2]), as TF1's graph mode does; fetching one gives a SparseTensorValue. Ragged
tensors are not supported.
"""
from __future__ import annotations

import collections
import re

import numpy as np

from graphexec import dtypes
from graphexec.framework import apply_op, name_scope
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op

# The public API (graphexec/__init__.py star-imports it as tf.<name>; tf.strings re-exports it).
__all__ = ["SparseTensor", "SparseTensorValue", "as_string", "regex_replace", "string_join", "string_split",
           "string_strip", "string_to_number", "substr"]

SparseTensorValue = collections.namedtuple("SparseTensorValue", ["indices", "values", "dense_shape"])


class SparseTensor(collections.namedtuple("SparseTensor", ["indices", "values", "dense_shape"])):
    """Three tensors standing for a sparse tensor; sess.run of one gives a SparseTensorValue of arrays."""

    value_type = SparseTensorValue

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def graph(self):
        return self.values.graph


def _strings(*names):
    """Dtype check: the named inputs (by position) are tf.string."""
    def check(args):
        for index, name in names:
            if args[index].dtype is not dtypes.string:
                raise ShapeError(f"{name} must be a string tensor, got {args[index].dtype.name}")
    return check


def _string_in(returns):
    """Dtype rule of a one-input string op; `returns(attrs)` is its output dtype."""
    check = _strings((0, "input"))

    def rule(args, attrs):
        check(args)
        return returns(attrs)

    return rule


def _map(fn, array, out_dtype=object):
    """fn applied to every element of an object array of bytes, as an array of `out_dtype`."""
    flat = [fn(x) for x in np.asarray(array, dtype=object).reshape(-1)]
    out = np.empty(len(flat), dtype=out_dtype)
    out[:] = flat
    return out.reshape(np.shape(array))


def _string_unary(name, fn, out=lambda attrs: dtypes.string, attrs=None):
    """An elementwise op over one string input; `out(attrs)` is its output dtype."""
    return op(name, shape=rules.unchanged, dtype=_string_in(out), grad=NOT_DIFFERENTIABLE, inputs=("input",),
              attrs=attrs, kernel=lambda ctx, x, **kw: _map(lambda s: fn(s, **kw), x, out(kw).np))


# -- AsString ------------------------------------------------------------------------------------------
def _format_number(value, precision, scientific, shortest, width, fill):
    """TF's printf-style rule: %[0][width][.precision](e|g|f) for floats, %[0][width]d for integers."""
    if isinstance(value, (bool, np.bool_)):
        return b"true" if value else b"false"
    flags = ("0" if fill == "0" else "") + (str(width) if width > -1 else "")
    if isinstance(value, (float, np.floating)):
        spec = flags + (f".{precision}" if precision > -1 else "") + ("e" if scientific else "g" if shortest else "f")
        return (f"%{spec}" % float(value)).encode()
    return (f"%{flags}d" % int(value)).encode()


def _as_string_dtype(args, attrs):
    if not (args[0].dtype.is_numeric or args[0].dtype.is_bool):
        raise ShapeError(f"as_string takes a number or bool tensor, got {args[0].dtype.name}")
    if attrs["fill"] not in ("", " ", "0"):
        raise ShapeError(f"fill must be '', ' ' or '0', got {attrs['fill']!r}")
    return dtypes.string


AsString = op("AsString", shape=rules.unchanged, dtype=_as_string_dtype, grad=NOT_DIFFERENTIABLE, inputs=("input",),
              kernel=lambda ctx, x, **kw: _map(lambda v: _format_number(v, **kw), ctx.to_host(x)),
              attrs={"precision": attr("int", -1), "scientific": attr("bool", False), "shortest": attr("bool", False),
                     "width": attr("int", -1), "fill": attr("string", "")})


def as_string(input, precision=-1, scientific=False, shortest=False, width=-1, fill="", name=None):  # noqa: A002
    attrs = {"precision": int(precision), "scientific": bool(scientific), "shortest": bool(shortest),
             "width": int(width), "fill": str(fill)}
    return apply_op("AsString", (convert_to_tensor(input),), attrs, name or "AsString").outputs[0]


# -- elementwise string -> string / number -----------------------------------------------------------------
def _utf8_length(s: bytes, unit: str) -> int:
    return len(s) if unit == "BYTE" else len(s.decode("utf-8", errors="replace"))


def _to_number(s: bytes, out_type):
    text = s.decode("ascii", errors="replace").strip()
    try:
        return float(text) if out_type.is_floating else int(text, 10)
    except ValueError:
        raise ValueError(f"StringToNumberOp could not correctly convert string: {s.decode(errors='replace')}") \
            from None


def _check_unit(attrs):
    if attrs["unit"] not in ("BYTE", "UTF8_CHAR"):
        raise ShapeError(f"unit must be BYTE or UTF8_CHAR, got {attrs['unit']!r}")
    return dtypes.int32


def _to_number_type(attrs):
    if attrs["out_type"] not in (dtypes.float32, dtypes.float64, dtypes.int32, dtypes.int64):
        raise ShapeError(f"out_type must be float32, float64, int32 or int64, got {attrs['out_type'].name}")
    return attrs["out_type"]


StringLength = _string_unary("StringLength", _utf8_length, out=_check_unit, attrs={"unit": attr("string", "BYTE")})
StringToNumber = _string_unary("StringToNumber", _to_number, out=_to_number_type, attrs={"out_type": attr("type", dtypes.float32)})
StringUpper = _string_unary("StringUpper", lambda s, encoding: s.upper(), attrs={"encoding": attr("string", "")})
StringLower = _string_unary("StringLower", lambda s, encoding: s.lower(), attrs={"encoding": attr("string", "")})
StringStrip = _string_unary("StringStrip", lambda s: s.strip())


def _regex_replace(s: bytes, pattern, rewrite, replace_global):
    return re.sub(pattern.encode(), rewrite.encode(), s, count=0 if replace_global else 1)


def _regex_dtype(args, attrs):
    try:
        re.compile(attrs["pattern"])
    except re.error as exc:
        raise ShapeError(f"invalid pattern {attrs['pattern']!r}: {exc}") from None
    _strings((0, "input"))(args)
    return dtypes.string


RegexReplace = op("RegexReplace", shape=rules.unchanged, dtype=_regex_dtype, grad=NOT_DIFFERENTIABLE,
                  inputs=("input",), kernel=lambda ctx, x, **kw: _map(lambda s: _regex_replace(s, **kw), x),
                  attrs={"pattern": attr("string"), "rewrite": attr("string"), "replace_global": attr("bool", True)})


def _unary_api(op_type, **defaults):
    def fn(input, name=None, **attrs):  # noqa: A002 - TF's argument name
        return apply_op(op_type, (convert_to_tensor(input, dtype=dtypes.string),), {**defaults, **attrs},
                        name or op_type).outputs[0]

    fn.__name__ = op_type
    return fn


def length(input, name=None, unit="BYTE"):  # noqa: A002
    return _unary_api("StringLength")(input, name, unit=unit)


def upper(input, encoding="", name=None):  # noqa: A002
    return _unary_api("StringUpper")(input, name, encoding=encoding)


def lower(input, encoding="", name=None):  # noqa: A002
    return _unary_api("StringLower")(input, name, encoding=encoding)


def string_strip(input, name=None):  # noqa: A002
    return _unary_api("StringStrip")(input, name)


def string_to_number(string_tensor, out_type=dtypes.float32, name=None):
    return _unary_api("StringToNumber")(string_tensor, name, out_type=dtypes.as_dtype(out_type))


def regex_replace(input, pattern, rewrite, replace_global=True, name=None):  # noqa: A002
    return _unary_api("RegexReplace")(input, name, pattern=str(pattern), rewrite=str(rewrite),
                                      replace_global=bool(replace_global))


# -- StringJoin and Substr: broadcasting string inputs ---------------------------------------------------------
def _join_dtype(args, attrs):
    _strings(*((i, f"input {i}") for i in range(len(args))))(args)
    return dtypes.string


def _join(ctx, *inputs, separator):
    parts = np.broadcast_arrays(*[np.asarray(x, dtype=object) for x in inputs])
    joiner = separator.encode()
    return _map(lambda row: joiner.join(row), _rows(parts))


def _rows(parts):
    """An object array whose elements are the tuples of broadcast elements, one per position."""
    shape = parts[0].shape
    out = np.empty(shape, dtype=object)
    flat = out.reshape(-1)
    columns = [p.reshape(-1) for p in parts]
    for i in range(flat.size):
        flat[i] = tuple(c[i] for c in columns)
    return out


StringJoin = op("StringJoin", shape=rules.broadcast, dtype=_join_dtype, kernel=_join, grad=NOT_DIFFERENTIABLE,
                inputs=("*inputs",), attrs={"separator": attr("string", "")})


def string_join(inputs, separator="", name=None):
    tensors = [convert_to_tensor(x, dtype=dtypes.string) for x in inputs]
    return apply_op("StringJoin", tensors, {"separator": str(separator)}, name or "StringJoin").outputs[0]


def _substr_dtype(args, attrs):
    _strings((0, "input"))(args)
    if args[1].dtype is not args[2].dtype or args[1].dtype not in (dtypes.int32, dtypes.int64):
        raise ShapeError(f"pos and len must both be int32 or int64, got {args[1].dtype.name} and {args[2].dtype.name}")
    if attrs["unit"] not in ("BYTE", "UTF8_CHAR"):
        raise ShapeError(f"unit must be BYTE or UTF8_CHAR, got {attrs['unit']!r}")
    return dtypes.string


def _substring(row, unit):
    s, pos, size = row
    text = s if unit == "BYTE" else s.decode("utf-8")
    pos, size = int(pos), int(size)
    if not -len(text) <= pos <= len(text):
        raise ValueError(f"pos {pos} out of range for string b'{s.decode(errors='replace')}'")
    if pos < 0:  # counted from the end, as TF
        pos += len(text)
    piece = text[pos:pos + max(size, 0)]
    return piece if unit == "BYTE" else piece.encode()


def _substr(ctx, x, pos, size, unit):
    parts = np.broadcast_arrays(np.asarray(x, dtype=object), np.asarray(pos), np.asarray(size))
    return _map(lambda row: _substring(row, unit), _rows(parts))


Substr = op("Substr", shape=rules.broadcast, dtype=_substr_dtype, kernel=_substr, grad=NOT_DIFFERENTIABLE,
            inputs=("input", "pos", "len"), attrs={"unit": attr("string", "BYTE")})


def substr(input, pos, len, name=None, unit="BYTE"):  # noqa: A002 - TF's argument names
    x = convert_to_tensor(input, dtype=dtypes.string)
    pos = convert_to_tensor(pos)
    size = convert_to_tensor(len, dtype=pos.dtype)
    return apply_op("Substr", (x, pos, size), {"unit": str(unit)}, name or "Substr").outputs[0]


# -- StringSplit: a SparseTensor of tokens -----------------------------------------------------------------
def _split_shape(args, attrs):
    if args[0].shape is not None and len(args[0].shape) != 1:
        raise ShapeError(f"input must be a vector, got shape {rules.fmt(args[0].shape)}")
    if args[1].shape is not None and len(args[1].shape) != 0:
        raise ShapeError(f"delimiter must be a scalar, got shape {rules.fmt(args[1].shape)}")
    return [(None, 2), (None,), (2,)]


def _split_dtype(args, attrs):
    _strings((0, "input"), (1, "delimiter"))(args)
    return [dtypes.int64, dtypes.string, dtypes.int64]


def _split(ctx, x, delimiter, skip_empty):
    separators = np.asarray(delimiter, dtype=object)[()]
    indices, values, width = [], [], 0
    for row, s in enumerate(x):
        # An empty delimiter splits into bytes; otherwise any of its bytes separates tokens (TF's rule).
        if not s:
            tokens = []  # an empty string has no tokens, empty or not (TF's rule)
        elif not separators:
            tokens = [bytes([b]) for b in s]
        else:
            tokens = re.split(b"[" + re.escape(separators) + b"]", s)
        if skip_empty:
            tokens = [t for t in tokens if t]
        for column, token in enumerate(tokens):
            indices.append((row, column))
            values.append(token)
        width = max(width, len(tokens))
    out_values = np.empty(len(values), dtype=object)
    out_values[:] = values
    return [np.asarray(indices, dtype=np.int64).reshape(-1, 2), out_values,
            np.asarray([len(x), width], dtype=np.int64)]


StringSplit = op("StringSplit", shape=_split_shape, dtype=_split_dtype, kernel=_split, grad=NOT_DIFFERENTIABLE,
                 inputs=("input", "delimiter"), attrs={"skip_empty": attr("bool", True)})


def string_split(source, delimiter=" ", skip_empty=True, name=None, sep=None):
    """tf.string_split / tf.strings.split (TF1 graph mode): a SparseTensor of the tokens of each string."""
    with name_scope(name, "StringSplit") as scope:
        x = convert_to_tensor(source, dtype=dtypes.string)
        sep = convert_to_tensor(delimiter if sep is None else sep, dtype=dtypes.string)
        outputs = apply_op("StringSplit", (x, sep), {"skip_empty": bool(skip_empty)}, scope).outputs
        return SparseTensor(*outputs)


def _split_v2(ctx, x, sep, maxsplit):
    separator = np.asarray(sep, dtype=object)[()] or None  # empty: runs of whitespace, ends stripped
    indices, values, width = [], [], 0
    for row, s in enumerate(x):
        tokens = s.split(separator, maxsplit)
        indices += [(row, column) for column in range(len(tokens))]
        values += tokens
        width = max(width, len(tokens))
    out_values = np.empty(len(values), dtype=object)
    out_values[:] = values
    return [np.asarray(indices, dtype=np.int64).reshape(-1, 2), out_values,
            np.asarray([len(x), width], dtype=np.int64)]


StringSplitV2 = op("StringSplitV2", shape=_split_shape, dtype=_split_dtype, kernel=_split_v2, grad=NOT_DIFFERENTIABLE,
                   inputs=("input", "sep"), attrs={"maxsplit": attr("int", -1)})


def split(source, sep=None, maxsplit=-1, name=None):
    """tf.strings.split in TF1 graph mode: tokens between whole `sep`s (empty ones kept), or between runs
    of whitespace when sep is None; a SparseTensor."""
    with name_scope(name, "StringSplit") as scope:
        x = convert_to_tensor(source, dtype=dtypes.string)
        separator = convert_to_tensor("" if sep is None else sep, dtype=dtypes.string)
        outputs = apply_op("StringSplitV2", (x, separator), {"maxsplit": int(maxsplit)}, scope).outputs
        return SparseTensor(*outputs)
