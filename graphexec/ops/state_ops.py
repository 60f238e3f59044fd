"""Variable reads and writes, and no-ops. Variables live in the session's (or worker's) variable store,
keyed by the variable's name; reads and assigns name it in their `var` attr."""
from __future__ import annotations

import numpy as np

from graphexec.ops import rules, scatter_ops, training_ops
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.runtime.context import check_declared


def _var_shape(args, attrs):
    return attrs["shape"].dims


def _assign_shape(args, attrs):
    return _value_shape(args, attrs, validate=attrs["validate_shape"])


def _delta_shape(args, attrs):
    return _value_shape(args, attrs, validate=True)


def _value_shape(args, attrs, validate):
    declared, value = attrs["shape"].dims, args[0].shape
    if validate and declared is not None and value is not None:
        if len(declared) != len(value) or any(a is not None and b is not None and a != b
                                              for a, b in zip(declared, value)):
            raise ShapeError(f"cannot assign a value of shape {rules.fmt(value)} to variable '{attrs['var']}' "
                             f"of shape {rules.fmt(declared)}")
    return declared if declared is not None else value


def _assign_dtype(args, attrs):
    if args[0].dtype is not attrs["dtype"]:
        raise ShapeError(f"cannot assign a {args[0].dtype.name} value to {attrs['dtype'].name} variable "
                         f"'{attrs['var']}'")
    return attrs["dtype"]


def _read(ctx, var, dtype, shape):
    return ctx.read_variable(var, dtype, shape)


def _store(ctx, var, value, dtype=None, shape=None):
    """Variables hold arrays nobody else writes: fetched values are copied off read-only arrays. A value
    stored already must have the graph's `dtype` (and `shape`, when given) for the variable."""
    stored = ctx.variables.get(var)
    if stored is not None and dtype is not None:
        check_declared(var, stored, dtype, shape, "assign to")
    if ctx.xp is np:
        value.setflags(write=False)
    ctx.variables[var] = value
    return value


def _assign(ctx, value, var, dtype, shape, validate_shape=True):
    # Never alias a feed or another node's buffer. validate_shape=False lets the value change the shape.
    return _store(ctx, var, ctx.xp.array(value, copy=True), dtype, shape if validate_shape else None)


def _assign_add(ctx, delta, var, dtype, shape):
    return _store(ctx, var, ctx.read_variable(var, dtype, shape) + delta)


def _assign_sub(ctx, delta, var, dtype, shape):
    return _store(ctx, var, ctx.read_variable(var, dtype, shape) - delta)


VARIABLE_ATTRS = {"var": attr("string"), "dtype": attr("type"), "shape": attr("shape")}  # var: the store's key

ReadVariable = op("ReadVariable", shape=_var_shape, dtype=lambda args, attrs: attrs["dtype"], kernel=_read,
                  stateful=True, grad=lambda op, dy: [], inputs=(), attrs=VARIABLE_ATTRS)
Assign = op("Assign", shape=_assign_shape, dtype=_assign_dtype, kernel=_assign, stateful=True,
            grad=NOT_DIFFERENTIABLE, inputs=("value",),
            attrs={**VARIABLE_ATTRS, "validate_shape": attr("bool", True)})  # False: the value may change its shape
AssignAdd = op("AssignAdd", shape=_delta_shape, dtype=_assign_dtype, kernel=_assign_add, stateful=True,
               grad=NOT_DIFFERENTIABLE, inputs=("delta",), attrs=VARIABLE_ATTRS)
AssignSub = op("AssignSub", shape=_delta_shape, dtype=_assign_dtype, kernel=_assign_sub, stateful=True,
               grad=NOT_DIFFERENTIABLE, inputs=("delta",), attrs=VARIABLE_ATTRS)
NoOp = op("NoOp", shape=lambda args, attrs: [], dtype=lambda args, attrs: [], kernel=lambda ctx, *xs: (),
          grad=NOT_DIFFERENTIABLE, is_noop=True, inputs=(), attrs={})

# Ops that read or write the variable store. The optimizers' Apply* ops (graphexec.ops.training_ops) write
# their `var` and the slot variables named in `slots` (training_ops.touched_variables lists both).
VARIABLE_OPS = (frozenset({"ReadVariable", "Assign", "AssignAdd", "AssignSub"}) | training_ops.UPDATE_OPS
                | scatter_ops.UPDATE_OPS)
_WRITE_OPS = frozenset({"Assign", "AssignAdd", "AssignSub"}) | scatter_ops.UPDATE_OPS


def written_variables(op_name: str, attrs) -> tuple[str, ...]:
    """Names of the variables a step of `op_name` writes (none for other ops)."""
    if op_name in training_ops.UPDATE_OPS:
        return training_ops.touched_variables(attrs)
    if op_name in _WRITE_OPS:
        return (attrs["var"],)
    return ()
