"""Symbolic differentiation: `tf.gradients(ys, xs)` adds the gradient graph to the user's graph.

Reverse mode, as in TF1 and micrograd: find the ops that lie on a path from some x to some y, visit
them consumers-first, and ask each op's declared gradient rule (the `grad=` of its registry entry)
for the gradients of its inputs given the summed gradients of its outputs.

A rule is `grad(op, *output_grads) -> [input_grad or None, ...]`, built from the public graph API.
For multi-output ops an output that received no gradient is passed as None. Ops declared
NOT_DIFFERENTIABLE, or whose gradient was never declared, raise LookupError naming the op when a
gradient reaches them on the way to an x. Every traversal uses explicit stacks, so 100,000-node
graphs do not hit Python's recursion limit.
"""
from __future__ import annotations

from graphexec.framework import Operation, Tensor, get_default_graph, name_scope
from graphexec.ops import registry
from graphexec.ops.array_ops import ones, shape
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.math_ops import add_n
from graphexec.ops.registry import NOT_DIFFERENTIABLE


def gradients(ys, xs, grad_ys=None, name="gradients", colocate_gradients_with_ops=False, gate_gradients=False,
              aggregation_method=None, stop_gradients=None):
    """d(sum of ys)/d(x) for each x in xs, as tensors of the graph; None for an x no y depends on.

    `xs` may hold tensors or tf.Variables (every read of the variable counts). `grad_ys` weights
    each y (default: ones); `stop_gradients` are tensors treated as constants. The colocation, gating
    and aggregation arguments are accepted for TF1 compatibility and change nothing here.
    """
    ys, xs = _as_list(ys), _as_list(xs)
    grad_ys = [None] * len(ys) if grad_ys is None else _as_list(grad_ys)
    if len(grad_ys) != len(ys):
        raise ValueError(f"grad_ys has {len(grad_ys)} entries but ys has {len(ys)}")
    y_tensors = [_tensor_of(y) for y in ys]
    graph = y_tensors[0].graph if y_tensors else get_default_graph()
    sources = _sources(xs, graph)
    blocked = {id(t) for t in _as_list(stop_gradients or [])}
    with graph.as_default(), name_scope(name):
        order = _topological_ancestors(y_tensors)
        reached = _reached_from(order, {id(t) for group in sources for t in group}, blocked)
        pending: dict[int, list] = {}
        _seed(pending, y_tensors, grad_ys, reached)
        for op in reversed(order):
            _backprop_op(op, pending, reached, blocked)
        return [_total(pending, group) for group in sources]


# -- graph traversal ---------------------------------------------------------------------------------------
def _topological_ancestors(ys: list[Tensor]) -> list[Operation]:
    """Every op the ys depend on through data edges, inputs before consumers (iterative DFS postorder)."""
    order, seen = [], set()
    stack = [(y.op, False) for y in reversed(ys)]
    while stack:
        op, inputs_done = stack.pop()
        if inputs_done:
            order.append(op)
            continue
        if id(op) in seen:
            continue
        seen.add(id(op))
        stack.append((op, True))
        stack.extend((t.op, False) for t in reversed(op.inputs) if id(t.op) not in seen)
    return order


def _reached_from(order, source_ids: set[int], blocked: set[int]) -> set[int]:
    """ids of the tensors that depend on a source (sources included), walking `order` forwards;
    a blocked tensor (stop_gradients) is reached only if it is itself a source."""
    reached = set(source_ids)
    for op in order:
        if any(id(t) in reached for t in op.inputs):
            reached.update(id(t) for t in op.outputs if id(t) not in blocked)
    return reached


# -- the backward pass -------------------------------------------------------------------------------------
def _seed(pending, ys, grad_ys, reached):
    for y, dy in zip(ys, grad_ys):
        if id(y) not in reached:
            continue
        dy = _default_grad_y(y, len(pending)) if dy is None else convert_to_tensor(dy, dtype=y.dtype)
        pending.setdefault(id(y), []).append(dy)


def _default_grad_y(y: Tensor, index: int) -> Tensor:
    """Ones shaped like y. TF1 seeds with ones(shape(y)) and grappler folds a static shape to a constant,
    so computing the gradient of a y of known shape does not run y's own op: a tf.Print on the loss
    stays silent when only the train op runs. An unknown shape is read from y at run time."""
    dims = y.shape.as_list() if y.shape.is_fully_defined() else shape(y)
    return ones(dims, y.dtype, name=f"grad_ys_{index}")


def _backprop_op(op: Operation, pending, reached, blocked):
    if not any(id(t) in reached and _differentiable(t.dtype) for t in op.inputs):
        return  # not on a path from an x (or an x's own producer): nothing to propagate
    out_grads = [None if id(t) in blocked else _aggregate(pending, t) for t in op.outputs]
    if all(g is None for g in out_grads):
        return
    rule = registry.get(op.type).grad
    if rule is None or rule is NOT_DIFFERENTIABLE:
        raise LookupError(f"No gradient defined for operation '{op.name}' (op type: {op.type})"
                          + (f", created at {op.source}" if op.source else "")
                          + (": it is declared not differentiable" if rule is NOT_DIFFERENTIABLE else ""))
    with name_scope(op.name + "_grad"):
        in_grads = rule(op, *out_grads)
    if len(in_grads) != len(op.inputs):
        raise ValueError(f"gradient of {op.type} '{op.name}' returned {len(in_grads)} values for "
                         f"{len(op.inputs)} inputs")
    for t, g in zip(op.inputs, in_grads):
        if g is not None and id(t) in reached and _differentiable(t.dtype):
            pending.setdefault(id(t), []).append(g)


def _aggregate(pending, t: Tensor) -> Tensor | None:
    """The sum of the partial gradients that reached `t` (summed once, then reused)."""
    parts = pending.get(id(t))
    if not parts:
        return None
    if len(parts) > 1:
        parts[:] = [add_n(parts, name="AddN")]
    return parts[0]


def _total(pending, group: list[Tensor]) -> Tensor | None:
    grads = [g for g in (_aggregate(pending, t) for t in group) if g is not None]
    if not grads:
        return None
    return grads[0] if len(grads) == 1 else add_n(grads)


# -- helpers -----------------------------------------------------------------------------------------------
def _differentiable(dtype) -> bool:
    return dtype.is_floating


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _tensor_of(value) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if hasattr(value, "_as_tensor"):
        return value._as_tensor()
    raise TypeError(f"tf.gradients needs tensors or variables, got {value!r}")


def _sources(xs, graph) -> list[list[Tensor]]:
    """For each x the tensors standing for it: itself, or for a variable every ReadVariable of it."""
    reads: dict[str, list[Tensor]] | None = None
    out = []
    for x in xs:
        if isinstance(x, Tensor):
            out.append([x])
            continue
        var_name = getattr(x, "_var_name", None)
        if var_name is None:
            raise TypeError(f"tf.gradients needs tensors or variables as xs, got {x!r}")
        if reads is None:
            reads = {}
            for op in graph.get_operations():
                if op.type == "ReadVariable":
                    reads.setdefault(op.attrs["var"], []).append(op.outputs[0])
        out.append(reads.get(var_name, []))
    return out
