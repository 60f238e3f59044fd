"""tf.parse_single_example / tf.parse_example (tf.io.*): features of serialized tf.train.Example protos.

One `ParseExampleFeature` node per requested feature reads it from each serialized Example (a string
scalar or vector): a FixedLenFeature is a dense tensor [batch..., *shape] (its default where the Example
lacks it), a VarLenFeature a SparseTensor. The Example message is graphexec/v1/example.proto, which has
TensorFlow's field numbers, so records written by TensorFlow parse here; graphexec/rpc/example.py reads
it (protobuf stays in graphexec/rpc)."""
from __future__ import annotations

import collections

import numpy as np

from graphexec import dtypes
from graphexec.framework import apply_op, name_scope
from graphexec.ops.convert import convert_to_tensor, shape_attr
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.ops.string_ops import SparseTensor
from graphexec.rpc.example import feature_values

__all__ = ["FixedLenFeature", "VarLenFeature", "parse_example", "parse_single_example"]

FixedLenFeature = collections.namedtuple("FixedLenFeature", ["shape", "dtype", "default_value"])
FixedLenFeature.__new__.__defaults__ = (None,)
VarLenFeature = collections.namedtuple("VarLenFeature", ["dtype"])

_KINDS = {dtypes.float32: "float_list", dtypes.int64: "int64_list", dtypes.string: "bytes_list"}


def _shape(args, attrs):
    batch = args[0].shape
    if attrs["kind"] == "var":
        rank = None if batch is None else len(batch) + 1
        return [(None, rank), (None,), (rank,)]
    return None if batch is None or attrs["shape"].unknown_rank else tuple(batch) + tuple(attrs["shape"])


def _dtype(args, attrs):
    if args[0].dtype is not dtypes.string:
        raise ShapeError(f"serialized must be a string tensor, got {args[0].dtype.name}")
    if attrs["dtype"] not in _KINDS:
        raise ShapeError(f"a feature's dtype must be float32, int64 or string, got {attrs['dtype'].name}")
    if attrs["kind"] == "var":
        return [dtypes.int64, attrs["dtype"], dtypes.int64]
    return attrs["dtype"]


def _values(serialized: bytes, key: str, dtype, where: str):
    """The feature's values in one Example, or None when the Example lacks it."""
    try:
        return feature_values(serialized, key, _KINDS[dtype], dtype.np)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _parse(ctx, serialized, key, dtype, shape, kind, default):
    records = np.asarray(serialized, dtype=object)
    flat = records.reshape(-1)
    if kind == "var":
        indices, values = [], []
        width = 0
        for row, record in enumerate(flat):
            found = _values(record, key, dtype, "VarLenFeature")
            found = found if found is not None else np.zeros(0, dtype=object if dtype is dtypes.string else dtype.np)
            indices += [(row, i) for i in range(len(found))]
            values.append(found)
            width = max(width, len(found))
        batch_index = np.asarray(indices, dtype=np.int64).reshape(-1, 2)
        joined = np.concatenate(values) if values else np.zeros(0, dtype=dtype.np)
        if records.ndim == 0:
            return [batch_index[:, 1:], joined, np.asarray([width], dtype=np.int64)]
        return [batch_index, joined, np.asarray([len(flat), width], dtype=np.int64)]
    size = int(np.prod(shape, dtype=np.int64))
    rows = []
    for record in flat:
        found = _values(record, key, dtype, "FixedLenFeature")
        if found is None:
            if default is None:
                raise ValueError(f"Feature: {key} (data type: {dtype.name}) is required but could not be found.")
            found = np.broadcast_to(np.asarray(default, dtype=object if dtype is dtypes.string else dtype.np),
                                    tuple(shape)).reshape(-1)
        if found.size != size:
            raise ValueError(f"Key: {key}. Can't parse serialized Example: expected {size} values for shape "
                             f"{list(shape)}, found {found.size}")
        rows.append(found)
    out = np.stack(rows) if rows else np.zeros((0, size), dtype=object if dtype is dtypes.string else dtype.np)
    return out.reshape(records.shape + tuple(shape))


ParseExampleFeature = op("ParseExampleFeature", shape=_shape, dtype=_dtype, kernel=_parse, grad=NOT_DIFFERENTIABLE,
                         inputs=("serialized",),
                         attrs={"key": attr("string"), "dtype": attr("type"), "shape": attr("shape"),
                                "kind": attr("string"), "default": attr("tensor", None, nullable=True)})


def parse_example(serialized, features, name=None, example_names=None):
    """A dict of each feature of a vector of serialized Examples (dense [batch, *shape] or SparseTensor)."""
    with name_scope(name, "ParseExample"):
        serialized = convert_to_tensor(serialized, dtype=dtypes.string)
        out = {}
        for key in sorted(features):
            spec = features[key]
            dtype = dtypes.as_dtype(spec.dtype)
            if isinstance(spec, VarLenFeature):
                attrs = {"key": key, "dtype": dtype, "shape": shape_attr([]), "kind": "var", "default": None}
                out[key] = SparseTensor(*apply_op("ParseExampleFeature", (serialized,), attrs, "feature").outputs)
                continue
            default = None
            if spec.default_value is not None:
                default = np.asarray(spec.default_value, dtype=object if dtype is dtypes.string else dtype.np)
            attrs = {"key": key, "dtype": dtype, "shape": shape_attr(list(spec.shape)), "kind": "fixed",
                     "default": default}
            out[key] = apply_op("ParseExampleFeature", (serialized,), attrs, "feature").outputs[0]
        return out


def parse_single_example(serialized, features, name=None, example_names=None):
    """parse_example of one serialized Example (a string scalar): dense features have their own shape."""
    return parse_example(serialized, features, name or "ParseSingleExample")
