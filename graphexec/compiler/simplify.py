"""Algebraic simplification.

* Identity-like nodes without control inputs are bypassed.
* Chains of floating-point adds, subtracts and multiplies by constants collapse into one affine map
  `x * a + b` (x*1 and x+0 vanish as the special case a=1, b=0). A constant may only take part when it
  does not change the shape of `x` (it broadcasts into it).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from graphexec import ir
from graphexec.compiler.util import canonical, const_node, consumers, control_users, pinned_nodes, rename_tensors

FORWARDED = frozenset({"Identity", "StopGradient"})
AFFINE = frozenset({"Add", "Sub", "Mul", "Neg"})


def forward_identities(program: ir.Program) -> ir.Program:
    renames, keep = {}, []
    for node in program.nodes:
        if node.op in FORWARDED and not node.control_inputs:
            renames[f"{node.name}:0"] = canonical(node.inputs[0])
        else:
            keep.append(node)
    if not renames:
        return program
    controllers = control_users(program.nodes) | set(program.targets)  # fetches are simply renamed
    dropped = {n.name for n in program.nodes} - {n.name for n in keep}
    if controllers & dropped:  # someone orders on a bypassed node: keep those nodes
        keep = [n for n in program.nodes if n.name not in dropped or n.name in controllers]
        renames = {k: v for k, v in renames.items() if ir.split_tensor_name(k)[0] not in controllers}
    return rename_tensors(program, keep, renames)


@dataclass(frozen=True)
class Affine:
    """value = base * scale + shift, with scale/shift in float64 for accuracy."""

    base: str
    scale: np.ndarray
    shift: np.ndarray
    length: int


def collapse_affine_chains(program: ir.Program) -> ir.Program:
    by_name = program.by_name()
    users = consumers(program.nodes)
    pinned = pinned_nodes(program)
    forms: dict[str, Affine] = {}
    for node in program.nodes:
        form = _affine_step(node, by_name, forms)
        if form is not None:
            forms[node.name] = form
    out = []
    for node in program.nodes:
        form = forms.get(node.name)
        chain_only = all(u in forms for u in users.get(node.name, ())) and users.get(node.name)
        if form is None or form.length < 2 and not _is_trivial(form):
            out.append(node)
        elif chain_only and node.name not in pinned and all(forms[u].base != f"{node.name}:0"
                                                            for u in users[node.name]):
            continue  # an interior link of a chain: its value is never needed on its own
        else:
            out.extend(_emit(node, form))
    return program.with_nodes(out)


def _is_trivial(form: Affine) -> bool:
    return bool(np.all(form.scale == 1) and np.all(form.shift == 0))


def _affine_step(node: ir.Node, by_name, forms) -> Affine | None:
    if node.op not in AFFINE or not node.outputs or node.control_inputs:
        return None
    out_type = node.outputs[0]
    if not out_type.dtype.is_floating:
        return None
    if node.op == "Neg":
        x = canonical(node.inputs[0])
        base = _form_of(x, by_name, forms, out_type)
        return Affine(base.base, -base.scale, -base.shift, base.length + 1)
    a, b = (canonical(t) for t in node.inputs)
    const_a, const_b = _const(a, by_name, out_type), _const(b, by_name, out_type)
    if (const_a is None) == (const_b is None):
        return None
    x, c, const_first = (b, const_a, True) if const_a is not None else (a, const_b, False)
    if _type_of(x, by_name) != out_type:  # the constant would broadcast x to a new shape or dtype
        return None
    form = _form_of(x, by_name, forms, out_type)
    if node.op == "Mul":
        return Affine(form.base, form.scale * c, form.shift * c, form.length + 1)
    if node.op == "Add":
        return Affine(form.base, form.scale, form.shift + c, form.length + 1)
    if const_first:  # c - x
        return Affine(form.base, -form.scale, c - form.shift, form.length + 1)
    return Affine(form.base, form.scale, form.shift - c, form.length + 1)


def _type_of(tensor: str, by_name) -> ir.TensorType | None:
    name, index = ir.split_tensor_name(tensor)
    node = by_name.get(name)
    return node.outputs[index] if node is not None and index < len(node.outputs) else None


def _form_of(tensor: str, by_name, forms, out_type) -> Affine:
    node_name = ir.split_tensor_name(tensor)[0]
    if node_name in forms:
        return forms[node_name]
    return Affine(tensor, np.float64(1.0), np.float64(0.0), 0)


def _const(tensor: str, by_name, out_type) -> np.ndarray | None:
    """The constant's value if it is one and broadcasting it leaves the output shape unchanged."""
    node = by_name.get(ir.split_tensor_name(tensor)[0])
    if node is None or node.op != "Const":
        return None
    value = node.attrs["value"]
    shape = out_type.shape
    if shape is None or value.ndim > len(shape):
        return None
    if value.size != 1 and (None in shape or np.broadcast_shapes(value.shape, shape) != tuple(shape)):
        return None
    return value.astype(np.float64)


def _emit(node: ir.Node, form: Affine) -> list[ir.Node]:
    """Nodes computing the chain end `node` from its base; the last keeps `node`'s name."""
    dtype = node.outputs[0].dtype
    steps, current = [], form.base
    scale_is_one, shift_is_zero = np.all(form.scale == 1), np.all(form.shift == 0)
    if scale_is_one and shift_is_zero:
        return [replace(node, op="Identity", inputs=(form.base,), attrs={})]
    if not scale_is_one:
        scale = const_node(f"{node.name}/affine_scale", _as(form.scale, dtype), node.source, node.device)
        name = node.name if shift_is_zero else f"{node.name}/affine_mul"
        steps += [scale, replace(node, name=name, op="Mul", inputs=(current, f"{scale.name}:0"), attrs={})]
        current = f"{name}:0"
    if not shift_is_zero:
        shift = const_node(f"{node.name}/affine_shift", _as(form.shift, dtype), node.source, node.device)
        steps += [shift, replace(node, op="Add", inputs=(current, f"{shift.name}:0"), attrs={})]
    return steps


def _as(value, dtype) -> np.ndarray:
    array = np.asarray(value, dtype=dtype.np)
    array.setflags(write=False)
    return array


def simplify(program: ir.Program) -> ir.Program:
    return forward_identities(collapse_affine_chains(program))


__all__ = ["simplify", "forward_identities", "collapse_affine_chains", "rename_tensors"]
