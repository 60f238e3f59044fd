"""Sparse updates of variables: tf.scatter_update / scatter_add / scatter_sub (rows of a variable picked
by indices). Like Assign, each names its variable in `var` and outputs the variable's new value."""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.framework import apply_op
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.ops.shape_inputs import check_index_dtype

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["scatter_add", "scatter_sub", "scatter_update"]

_ATTRS = {"var": attr("string"), "dtype": attr("type"), "shape": attr("shape")}  # as the variable ops'


def _scatter_shape(args, attrs):
    indices, updates = args
    check_index_dtype(indices, "indices")
    declared = attrs["shape"].dims
    if declared is not None and not declared:
        raise ShapeError(f"variable '{attrs['var']}' must be at least rank 1 to scatter into")
    if None not in (declared, indices.shape, updates.shape):
        want = indices.shape + tuple(declared[1:])
        if len(want) != len(updates.shape) or any(a is not None and b is not None and a != b
                                                  for a, b in zip(want, updates.shape)):
            raise ShapeError(f"updates must have shape indices.shape + variable.shape[1:] = {rules.fmt(want)}, "
                             f"got {rules.fmt(updates.shape)}")
    return declared


def _scatter_dtype(args, attrs):
    if args[1].dtype is not attrs["dtype"]:
        raise ShapeError(f"cannot scatter {args[1].dtype.name} updates into {attrs['dtype'].name} variable "
                         f"'{attrs['var']}'")
    return attrs["dtype"]


def _scatter(combine):
    def kernel(ctx, indices, updates, var, dtype, shape):
        value = ctx.read_variable(var)
        rows = np.asarray(ctx.to_host(indices)).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= value.shape[0]):
            bad = rows.min() if rows.min() < 0 else rows.max()
            raise ValueError(f"indices contains {bad}, which is not in [0, {value.shape[0]}) for variable '{var}'")
        out = value.copy()
        combine(ctx.xp, out, ctx.xp.asarray(rows), updates.reshape((rows.size,) + value.shape[1:]))
        if ctx.xp is np:
            out.setflags(write=False)  # as every stored variable value: fetches copy it
        ctx.variables[var] = out
        return out

    return kernel


def _assign_rows(xp, out, rows, updates):
    out[rows] = updates


def _add_rows(xp, out, rows, updates):
    xp.add.at(out, rows, updates)


def _sub_rows(xp, out, rows, updates):
    xp.subtract.at(out, rows, updates)


def _declare(name, combine):
    return op(name, shape=_scatter_shape, dtype=_scatter_dtype, kernel=_scatter(combine), stateful=True,
              grad=NOT_DIFFERENTIABLE, inputs=("indices", "updates"), attrs=_ATTRS)


ScatterUpdate = _declare("ScatterUpdate", _assign_rows)
ScatterAdd = _declare("ScatterAdd", _add_rows)
ScatterSub = _declare("ScatterSub", _sub_rows)
UPDATE_OPS = frozenset({"ScatterUpdate", "ScatterAdd", "ScatterSub"})


def _api(op_type):
    def fn(ref, indices, updates, use_locking=None, name=None):
        attrs = getattr(ref, "_attrs", None)
        if attrs is None:
            raise TypeError(f"tf.{op_type} updates a tf.Variable, got {type(ref).__name__}")
        indices = convert_to_tensor(indices, preferred_dtype=dtypes.int32)
        updates = convert_to_tensor(updates, dtype=attrs["dtype"])
        return apply_op(op_type, (indices, updates), dict(attrs), name or op_type, graph=ref.graph).outputs[0]

    fn.__name__ = op_type
    return fn


scatter_update = _api("ScatterUpdate")
scatter_add = _api("ScatterAdd")
scatter_sub = _api("ScatterSub")
