"""Algebraic simplification as a table of rewrite rules.

`RULES` lists rows of (op names, rule). The pass visits the nodes in order and offers each node to the
rules of its op; the first rule that returns something other than None wins. A rule is a small pure
function of (node, `Facts` about the input program) that returns one of:

* `Forward(tensor)`: the node goes away; its users read `tensor` instead;
* a tuple of nodes replacing it (the last keeps its name).

Nodes a rewrite leaves without users (the interior links of a collapsed chain, its constants) are
removed by the pipeline's `prune`, which runs after this pass.

The rules:
* Identity-like nodes without control edges are forwarded to their input.
* Chains of floating-point adds, subtracts, multiplies by constants and negations collapse into one
  affine map `x * a + b` (x*1 and x+0 vanish as the special case a=1, b=0). A constant may only take
  part when it does not change the shape of `x` (it broadcasts into it).
* A ReLU's gradient taken after a max-pool's, ReluGrad(MaxPoolGrad(r, MaxPool(r), dy), r), masks the
  pooled gradient instead: MaxPoolGrad(r, MaxPool(r), ReluGrad(dy, MaxPool(r))), on a quarter of the
  elements for 2x2 windows (the classic CNN's conv -> ReLU -> pool).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from graphexec import ir
from graphexec.compiler.util import canonical, const_node, consumers, control_users, pinned_nodes, rename_tensors
from graphexec.ops import registry


@dataclass(frozen=True)
class Forward:
    """A rule's answer: the node's single output is `tensor`."""

    tensor: str


class Affine(NamedTuple):
    """value = base * scale + shift, with scale/shift in float64 for accuracy: Python floats while every
    constant of the chain is one number (the common case, and several times cheaper than numpy
    scalars: W5's 1,000-link chain), float64 arrays otherwise. Both round as IEEE doubles."""

    base: str
    scale: float | np.ndarray
    shift: float | np.ndarray
    length: int


class Facts:
    """What rules may ask about the input program. Affine forms are memoized by node name, in node order."""

    def __init__(self, program: ir.Program):
        self.by_name = program.by_name()
        self.users = consumers(program.nodes)
        self.pinned = pinned_nodes(program)
        self.ordered_on = control_users(program.nodes) | set(program.targets)  # fetches are simply renamed
        self.forms: dict[str, Affine | None] = {}

    def form(self, node: ir.Node) -> Affine | None:
        if node.name not in self.forms:
            self.forms[node.name] = _affine_step(node, self)
        return self.forms[node.name]


# -- rules ------------------------------------------------------------------------------------------
def forward_identity(node: ir.Node, facts: Facts):
    if node.control_inputs or node.name in facts.ordered_on:
        return None  # someone orders on it, or it orders on something: it must stay a node
    return Forward(canonical(node.inputs[0]))


def collapse_affine_chain(node: ir.Node, facts: Facts):
    """At the end of an affine chain, compute the whole chain from its base in at most two ops."""
    form = facts.form(node)
    if form is None or (form.length < 2 and not _is_trivial(form)) or _is_interior(node, facts):
        return None
    if _is_trivial(form):
        if node.name in facts.ordered_on:
            return (replace(node, op="Identity", inputs=(form.base,), attrs=ir.EMPTY_ATTRS),)
        return Forward(form.base)
    return _emit(node, form)


POOL_ATTRS = ("ksize", "strides", "padding", "data_format")


def mask_before_max_pool_grad(node: ir.Node, facts: Facts):
    """ReluGrad(g, r) = where(r > 0, g, 0). MaxPoolGrad routes each window's gradient only to the
    window's first maximum of r, where r equals the window's pooled value z: so masking by z > 0 before
    routing gives the same values, and the same bits (every sum of routed values adds values under one
    mask value, the position's own)."""
    grad, features = (canonical(t) for t in node.inputs)
    pool_grad = facts.by_name.get(ir.split_tensor_name(grad)[0])
    if (pool_grad is None or pool_grad.op != "MaxPoolGrad" or pool_grad.control_inputs or node.control_inputs
            or facts.users.get(pool_grad.name) != [node.name] or pool_grad.name in facts.pinned):
        return None
    r, z, dy = (canonical(t) for t in pool_grad.inputs)
    pool = facts.by_name.get(ir.split_tensor_name(z)[0])
    if (r != features or pool is None or pool.op != "MaxPool" or canonical(pool.inputs[0]) != r
            or any(pool.attrs.get(k) != pool_grad.attrs.get(k) for k in POOL_ATTRS)
            or node.outputs != pool_grad.outputs or _type_of(dy, facts) != _type_of(z, facts)):
        return None
    masked_name = f"{node.name}/pooled_mask"
    if masked_name in facts.by_name:
        return None
    masked = replace(node, name=masked_name, inputs=(dy, z), outputs=(_type_of(z, facts),))
    return (masked, replace(pool_grad, name=node.name, inputs=(r, z, f"{masked_name}:0"), device=node.device,
                            source=node.source))


AFFINE_OPS = ("Add", "Sub", "Mul", "Neg")
RULES = (
    (("Identity", "StopGradient", "PlaceholderWithDefault"), forward_identity),  # unfed: its default flows on
    (AFFINE_OPS, collapse_affine_chain),
    (("ReluGrad",), mask_before_max_pool_grad),
)
RULES_BY_OP = {op: tuple(rule for ops, rule in RULES if op in ops) for ops, _ in RULES for op in ops}


def simplify(program: ir.Program) -> ir.Program:
    facts = Facts(program)
    renames: dict[str, str] = {}
    out = []
    changed = False
    for node in program.nodes:
        result = None
        for rule in RULES_BY_OP.get(node.op, ()):
            result = rule(node, facts)
            if result is not None:
                break
        if result is None:
            out.append(node)
            continue
        changed = True
        if isinstance(result, Forward):
            renames[f"{node.name}:0"] = result.tensor
        else:
            out.extend(result)
    return rename_tensors(program, out, renames) if changed else program


# -- affine chains ----------------------------------------------------------------------------------
def _is_trivial(form: Affine) -> bool:
    scale, shift = form.scale, form.shift
    if type(scale) is float and type(shift) is float:
        return scale == 1.0 and shift == 0.0
    return bool(np.all(scale == 1) and np.all(shift == 0))


def _is_interior(node: ir.Node, facts: Facts) -> bool:
    """An interior link: every user extends the chain through it, so its value is never needed alone."""
    users = facts.users.get(node.name)
    if not users or node.name in facts.pinned:
        return False
    for name in users:
        form = facts.form(facts.by_name[name])
        if form is None or form.base == f"{node.name}:0":
            return False
    return True


def _affine_step(node: ir.Node, facts: Facts) -> Affine | None:
    if node.op not in AFFINE_OPS or not node.outputs or node.control_inputs:
        return None
    out_type = node.outputs[0]
    if not out_type.dtype.is_floating:
        return None
    if node.op == "Neg":
        base = _form_of(canonical(node.inputs[0]), facts)
        return Affine(base.base, -base.scale, -base.shift, base.length + 1)
    a, b = (canonical(t) for t in node.inputs)
    const_a, const_b = _const(a, facts, out_type), _const(b, facts, out_type)
    if (const_a is None) == (const_b is None):
        return None
    x, c, const_first = (b, const_a, True) if const_a is not None else (a, const_b, False)
    if _type_of(x, facts) != out_type:  # the constant would broadcast x to a new shape or dtype
        return None
    form = _form_of(x, facts)
    if node.op == "Mul":
        return Affine(form.base, form.scale * c, form.shift * c, form.length + 1)
    if node.op == "Add":
        return Affine(form.base, form.scale, form.shift + c, form.length + 1)
    if const_first:  # c - x
        return Affine(form.base, -form.scale, c - form.shift, form.length + 1)
    return Affine(form.base, form.scale, form.shift - c, form.length + 1)


def _type_of(tensor: str, facts: Facts) -> ir.TensorType | None:
    name, index = ir.split_tensor_name(tensor)
    node = facts.by_name.get(name)
    return node.outputs[index] if node is not None and index < len(node.outputs) else None


def _form_of(tensor: str, facts: Facts) -> Affine:
    """The form of an operand: its producer's (computed earlier: nodes are in order), or the identity."""
    form = facts.forms.get(ir.split_tensor_name(tensor)[0])
    return form if form is not None else Affine(tensor, 1.0, 0.0, 0)


def _const(tensor: str, facts: Facts, out_type) -> float | np.ndarray | None:
    """The constant's value if it is one and broadcasting it leaves the output shape unchanged."""
    node = facts.by_name.get(ir.split_tensor_name(tensor)[0])
    if node is None or not registry.get(node.op).is_constant:
        return None
    value = node.attrs["value"]
    shape = out_type.shape
    if shape is None or value.ndim > len(shape):
        return None
    if value.size != 1 and (None in shape or np.broadcast_shapes(value.shape, shape) != tuple(shape)):
        return None
    if value.size == 1:  # one number, as a float64 (see Affine)
        return float(value.reshape(-1)[0])
    return value.astype(np.float64)


def _emit(node: ir.Node, form: Affine) -> tuple[ir.Node, ...]:
    """Nodes computing the chain end `node` from its base; the last keeps `node`'s name."""
    dtype = node.outputs[0].dtype
    steps, current = [], form.base
    scale_is_one, shift_is_zero = np.all(form.scale == 1), np.all(form.shift == 0)
    if not scale_is_one:
        scale = const_node(f"{node.name}/affine_scale", _as(form.scale, dtype), node.source, node.device)
        name = node.name if shift_is_zero else f"{node.name}/affine_mul"
        steps += [scale, replace(node, name=name, op="Mul", inputs=(current, f"{scale.name}:0"), attrs=ir.EMPTY_ATTRS)]
        current = f"{name}:0"
    if not shift_is_zero:
        shift = const_node(f"{node.name}/affine_shift", _as(form.shift, dtype), node.source, node.device)
        steps += [shift, replace(node, op="Add", inputs=(current, f"{shift.name}:0"), attrs=ir.EMPTY_ATTRS)]
    return tuple(steps)


def _as(value, dtype) -> np.ndarray:
    array = np.asarray(value, dtype=dtype.np)
    array.setflags(write=False)
    return array


__all__ = ["simplify", "RULES", "Forward", "forward_identity", "collapse_affine_chain", "mask_before_max_pool_grad"]
