"""Whether a plan is row-wise: run on several requests' feeds stacked along dimension 0, it gives each
request exactly the rows it would get alone (what dynamic batching, graphexec.server.batching, needs).

`rowwise(plan)` walks the steps once and gives every value one of two kinds:

* ROWS: dimension 0 is the batch, and row i depends only on row i of the feeds (the feeds are ROWS);
* SHARED: the value does not depend on the feeds at all (constants, variable reads, what is computed
  from those only), so every request would see the same one.

A step whose inputs are all SHARED is SHARED. Otherwise its op needs a rule in RULES saying how it
keeps rows apart (elementwise ops with broadcasting that leaves dimension 0 alone; MatMul with the rows
on the left; softmax, reductions and arg-max over other axes; reshapes that keep dimension 0; ...).
Anything else refuses the plan, naming the step: an op without a rule (it may mix rows: a reduction
over axis 0, Shape, a reshape across rows), any stateful op but ReadVariable (variable writes, random
numbers, printing, control flow), feeds whose dimension 0 is not free (`[None, ...]`), and a ROWS
value whose static dimension 0 is known (shape inference saw it tied to something else). Fetches may
be ROWS (split back by rows) or SHARED (the same value for every request).

The analysis is conservative: a refused plan runs unbatched, which is always right.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphexec import ir
from graphexec.compiler.plan import Plan
from graphexec.ops import registry

ROWS, SHARED = "rows", "shared"
ALLOWED_STATEFUL = frozenset({"ReadVariable"})  # reads are SHARED; plans that write are refused


@dataclass(frozen=True)
class Value:
    kind: str  # ROWS or SHARED
    shape: tuple | None  # the static shape (dims may be None), None for an unknown rank
    const: np.ndarray | None = None  # the value, for plan constants (axes, shapes)


@dataclass(frozen=True)
class RowWise:
    """`ok`: the plan may run batched; else `reason` says which step stops it. `fetch_rows[i]`: fetch i
    is split by rows (True) or is the same for every request (False)."""

    ok: bool
    reason: str = ""
    fetch_rows: tuple[bool, ...] = ()


class NotRowWise(Exception):
    """A step that may mix rows (its message says why)."""


def rowwise(plan: Plan) -> RowWise:
    """Whether `plan` may serve many requests as one run stacked along dimension 0 (see the module)."""
    try:
        values = _feed_values(plan)
        for slot, value in plan.constants.items():
            values[slot] = Value(SHARED, np.shape(value), np.asarray(value))
        for step in plan.steps:
            for slot, value in zip(step.outputs, _step(step, [values[s] for s in step.inputs])):
                values[slot] = value
        fetches = [values[e.slot] for e in plan.fetches]
    except NotRowWise as exc:
        return RowWise(False, str(exc))
    return RowWise(True, fetch_rows=tuple(v.kind == ROWS for v in fetches))


def _feed_values(plan: Plan) -> dict[int, Value]:
    if not plan.feeds:
        raise NotRowWise("the plan has no feeds")
    values = {}
    for endpoint in plan.feeds:
        shape = endpoint.type.shape
        if not shape or shape[0] is not None:
            raise NotRowWise(f"feed {endpoint.tensor} has shape {ir.format_shape(shape)}: dimension 0 must be "
                             f"free ([None, ...]) to stack requests")
        values[endpoint.slot] = Value(ROWS, shape)
    return values


def _step(step, inputs: list[Value]) -> list[Value]:
    definition = registry.REGISTRY.get(step.op)
    if definition is None or (definition.stateful and step.op not in ALLOWED_STATEFUL):
        raise NotRowWise(f"step {step.node} ({step.op}) has state or randomness")
    types = step.output_types
    if all(v.kind == SHARED for v in inputs):
        return [Value(SHARED, t.shape) for t in types]
    rule = RULES.get(step.op, _broadcast if definition.elementwise else None)
    if rule is None:
        raise NotRowWise(f"step {step.node} ({step.op}) may mix rows")
    if not rule(inputs, step.attrs, types):
        raise NotRowWise(f"step {step.node} ({step.op}) mixes rows with these inputs and attrs")
    out = []
    for t in types:
        if not t.shape or t.shape[0] is not None:
            raise NotRowWise(f"step {step.node} ({step.op}): its output {t} has a static dimension 0")
        out.append(Value(ROWS, t.shape))
    return out


# -- the rules: (inputs, attrs, output types) -> whether the op keeps rows apart --------------------------
def _rank(value: Value) -> int | None:
    return None if value.shape is None else len(value.shape)


def _axis(axis: int, rank: int | None) -> int | None:
    """`axis` as a non-negative axis of a `rank`-dimensional value (None when it cannot be told)."""
    if rank is None:
        return None
    return axis + rank if axis < 0 else axis


def _broadcast(inputs, attrs, types) -> bool:
    """Elementwise with broadcasting: ROWS inputs have the output's rank (so their dimension 0 is the
    output's), SHARED ones a lower rank or a dimension 0 of 1 (so they broadcast over the rows)."""
    rank = _rank(Value(ROWS, types[0].shape))
    if rank is None:
        return False
    for v in inputs:
        r = _rank(v)
        if r is None or r > rank:
            return False
        if v.kind == ROWS and r != rank:
            return False
        if v.kind == SHARED and r == rank and v.shape[0] != 1:
            return False
    return True


def _fused(inputs, attrs, types) -> bool:
    """A fused elementwise chain: each body node by the broadcasting rule."""
    body: ir.Subprogram = attrs["body"]
    local = dict(zip(body.params, inputs))
    for node in body.nodes:
        args = [local[name] for name in node.inputs]
        definition = registry.REGISTRY.get(node.op)
        if definition is None or not definition.elementwise or definition.stateful:
            return False
        if all(v.kind == SHARED for v in args):
            local[node.name] = Value(SHARED, node.outputs[0].shape)
            continue
        if not _broadcast(args, node.attrs, node.outputs):
            return False
        local[node.name] = Value(ROWS, node.outputs[0].shape)
    return True


def _only(*kinds):
    """Inputs of exactly these kinds (None: any), by position."""
    return lambda inputs: len(inputs) == len(kinds) and all(k is None or v.kind == k for v, k in zip(inputs, kinds))


def _unary(inputs, attrs, types) -> bool:
    return len(inputs) == 1


def _matmul(inputs, attrs, types) -> bool:
    """Rows on the left, a shared matrix on the right: row i of the product is row i of `a` times `b`."""
    return _only(ROWS, SHARED)(inputs) and not attrs.get("transpose_a", False) and _rank(inputs[0]) == 2


def _fused_matmul(inputs, attrs, types) -> bool:
    """_FusedMatMul: MatMul's rule, and a shared bias."""
    return len(inputs) == 3 and inputs[2].kind == SHARED and _matmul(inputs[:2], attrs, types)


def _last_axis(inputs, attrs, types) -> bool:
    """Softmax and LogSoftmax: along an axis other than 0."""
    rank = _rank(inputs[0])
    return rank is not None and rank >= 2 and _axis(attrs.get("axis", -1), rank) != 0


def _reduction(inputs, attrs, types) -> bool:
    """Sum, Mean, Max...: over named axes that leave out 0 (None means every axis, 0 included)."""
    axes, rank = attrs.get("axis"), _rank(inputs[0])
    return axes is not None and rank is not None and all(_axis(a, rank) != 0 for a in axes)


def _arg_reduction(inputs, attrs, types) -> bool:
    rank = _rank(inputs[0])
    return rank is not None and rank >= 2 and _axis(attrs.get("axis", 0), rank) != 0


def _reshape(inputs, attrs, types) -> bool:
    """Only `[-1, d1, d2, ...]` of a value whose other dimensions are known and hold d1*d2*... elements:
    each row is reshaped on its own."""
    tensor, shape = inputs
    if tensor.kind != ROWS or shape.const is None or tensor.shape is None:
        return False
    target = [int(d) for d in np.asarray(shape.const).reshape(-1)]
    rest = tensor.shape[1:]
    if not target or target[0] != -1 or any(d < 0 for d in target[1:]) or any(d is None for d in rest):
        return False
    return int(np.prod(target[1:], dtype=np.int64)) == int(np.prod(rest, dtype=np.int64))


def _expand_dims(inputs, attrs, types) -> bool:
    return _axis(attrs["axis"], len(types[0].shape) if types[0].shape is not None else None) != 0


def _squeeze(inputs, attrs, types) -> bool:
    axes, rank = attrs.get("axis"), _rank(inputs[0])
    return bool(axes) and rank is not None and all(_axis(a, rank) != 0 for a in axes)


def _transpose(inputs, attrs, types) -> bool:
    perm = attrs.get("perm")
    return perm is not None and len(perm) > 0 and perm[0] == 0


def _concat(inputs, attrs, types) -> bool:
    """Along an axis other than 0, of ROWS values only (a SHARED one has its own dimension 0)."""
    *parts, axis = inputs
    if axis.kind != SHARED or axis.const is None or any(p.kind != ROWS for p in parts):
        return False
    return _axis(int(axis.const), _rank(parts[0])) not in (0, None)


def _gather(inputs, attrs, types) -> bool:
    """Rows of shared params picked by ROWS indices (an embedding lookup), or columns of ROWS params."""
    params, indices, axis = inputs
    if axis.kind != SHARED or axis.const is None or attrs.get("batch_dims", 0):
        return False
    if params.kind == SHARED and indices.kind == ROWS:
        return _axis(int(axis.const), _rank(params)) == 0 and _rank(indices) not in (0, None)
    return params.kind == ROWS and indices.kind == SHARED and _axis(int(axis.const), _rank(params)) not in (0, None)


def _conv(inputs, attrs, types) -> bool:
    """Conv2D over ROWS images with a shared filter; both data formats put the images first."""
    return _only(ROWS, SHARED)(inputs) and attrs["strides"][0] == 1


def _fused_conv(inputs, attrs, types) -> bool:
    """_FusedConv2D: Conv2D's rule, and a shared bias."""
    return _only(ROWS, SHARED, SHARED)(inputs) and attrs["strides"][0] == 1


def _pool(inputs, attrs, types) -> bool:
    return attrs["ksize"][0] == 1 and attrs["strides"][0] == 1


def _top_k(inputs, attrs, types) -> bool:
    """Along the last axis, k shared."""
    return _only(ROWS, SHARED)(inputs) and (_rank(inputs[0]) or 0) >= 2


# Elementwise ops (OpDef.elementwise) follow _broadcast without being listed.
RULES = {
    "Fused": _fused,
    **dict.fromkeys(("Identity", "StopGradient", "ZerosLike", "OnesLike"), _unary),
    "MatMul": _matmul,
    "_FusedMatMul": _fused_matmul,
    **dict.fromkeys(("Softmax", "LogSoftmax"), _last_axis),
    **dict.fromkeys(("Sum", "Mean", "Max", "Min", "Prod", "All", "Any"), _reduction),
    **dict.fromkeys(("ArgMax", "ArgMin"), _arg_reduction),
    "Reshape": _reshape,
    "ExpandDims": _expand_dims,
    "Squeeze": _squeeze,
    "Transpose": _transpose,
    "ConcatV2": _concat,
    "GatherV2": _gather,
    "Conv2D": _conv,
    "_FusedConv2D": _fused_conv,
    **dict.fromkeys(("MaxPool", "AvgPool"), _pool),
    "TopKV2": _top_k,
}
