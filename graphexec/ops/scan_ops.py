"""Scans along an axis: cumsum and cumprod, inclusive or exclusive, forwards or in reverse (TF's
Cumsum/Cumprod; the axis is an input, as in TF).
"""
from __future__ import annotations

from graphexec import dtypes
from graphexec.framework import apply_op, name_scope
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.emit import emit
from graphexec.ops.registry import ShapeError, attr, op
from graphexec.ops.shape_inputs import axis_of, axis_tensor, check_index_dtype

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["cumprod", "cumsum"]

_SCAN_ATTRS = {"exclusive": attr("bool", False), "reverse": attr("bool", False)}


def _scan_shape(args, attrs):
    x, axis = args
    check_index_dtype(axis, "axis")
    if x.rank == 0:
        raise ShapeError("input must be at least a vector to scan along an axis")
    axis_of(axis, x.rank)  # checks a known axis against the rank
    return x.shape


def _scan(accumulate, identity):
    """Kernel of one scan: `accumulate` is xp.cumsum or xp.cumprod's name; `identity` fills the first
    element of an exclusive scan (which has nothing before it)."""
    def kernel(ctx, x, axis, exclusive, reverse):
        xp = ctx.xp
        axis = rules.normalize_axis(int(axis), x.ndim)
        if reverse:
            x = xp.flip(x, axis)
        out = getattr(xp, accumulate)(x, axis=axis, dtype=x.dtype)
        if exclusive and x.shape[axis]:
            head = (slice(None),) * axis + (slice(0, 1),)
            body = (slice(None),) * axis + (slice(0, -1),)
            out = xp.concatenate([xp.full_like(out[head], identity), out[body]], axis=axis)
        return xp.flip(out, axis) if reverse else out

    return kernel


def _cumsum_grad(op, dy):
    """Each input element feeds every output after it (before it in reverse): sum dy the other way."""
    x, axis = op.inputs
    return [cumsum(dy, axis, exclusive=op.attrs["exclusive"], reverse=not op.attrs["reverse"]), None]


def _cumprod_grad(op, dy):
    """As TF: cumsum(z * dy) the other way, divided by x (so undefined where x is 0)."""
    x, axis = op.inputs
    exclusive, reverse = op.attrs["exclusive"], op.attrs["reverse"]
    summed = cumsum(emit("Mul", op.outputs[0], dy), axis, exclusive=exclusive, reverse=not reverse)
    return [emit("RealDiv", summed, x) if x.dtype.is_floating else None, None]


Cumsum = op("Cumsum", shape=_scan_shape, dtype=lambda args, attrs: rules.same_dtype(*dtypes.NUMERIC)(args[:1], attrs),
            kernel=_scan("cumsum", 0), grad=_cumsum_grad, inputs=("x", "axis"), attrs=_SCAN_ATTRS)
Cumprod = op("Cumprod", shape=_scan_shape, dtype=lambda args, attrs: rules.same_dtype(*dtypes.NUMERIC)(args[:1], attrs),
             kernel=_scan("cumprod", 1), grad=_cumprod_grad, inputs=("x", "axis"), attrs=_SCAN_ATTRS)


def _scan_api(op_type):
    def fn(x, axis=0, exclusive=False, reverse=False, name=None):
        x = convert_to_tensor(x)
        with name_scope(name, op_type) as scope:
            attrs = {"exclusive": bool(exclusive), "reverse": bool(reverse)}
            return apply_op(op_type, (x, axis_tensor(axis)), attrs, scope).outputs[0]

    fn.__name__ = fn.__qualname__ = op_type.lower()
    fn.__doc__ = (f"tf.{fn.__name__}: running {op_type[3:].lower()} along `axis`; `exclusive` leaves each element "
                  f"out of its own result, `reverse` runs from the end.")
    return fn


cumsum = _scan_api("Cumsum")
cumprod = _scan_api("Cumprod")
