"""Grouping and ordering: tf.group, tf.no_op, tf.tuple."""
from __future__ import annotations

import builtins

from graphexec.framework import Operation, Tensor, apply_op, control_dependencies, get_default_graph
from graphexec.ops.emit import emit

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["group", "no_op", "tuple"]


def _as_op(x) -> Operation:
    if hasattr(x, "_as_control_op"):
        return x._as_control_op()
    return x.op if isinstance(x, Tensor) else x


def no_op(name=None):
    return apply_op("NoOp", (), {}, name or "NoOp")


def group(*inputs, name=None):
    """An op that runs all `inputs` (ops, tensors or nested lists of them) and produces nothing."""
    flat = []
    stack = list(inputs)[::-1]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, builtins.tuple)):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif item is not None:
            flat.append(_as_op(item))
    graph = flat[0].graph if flat else get_default_graph()
    with graph.as_default(), control_dependencies(flat):
        return apply_op("NoOp", (), {}, name or "group_deps", graph=graph)


def tuple(tensors, name=None, control_inputs=None):  # noqa: A001 - TF's name
    gate = group(*[t for t in tensors if t is not None], *(control_inputs or []), name=name or "tuple")
    with control_dependencies([gate]):
        return [None if t is None else emit("Identity", t) for t in tensors]
