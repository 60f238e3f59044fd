"""Common-subexpression elimination: pure nodes with the same op, inputs and attrs become one."""
from __future__ import annotations

import numpy as np

from graphexec import ir
from graphexec.compiler.util import canonical, rename_tensors
from graphexec.ops import registry

NEVER_MERGED = frozenset({"Feed", "Placeholder", "NoOp", "Fused"})


def _hashable(value):
    if isinstance(value, np.ndarray):
        return ("tensor", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *(_hashable(v) for v in value))
    return (type(value).__name__, value)  # the type keeps 1, 1.0 and True apart


def _key(node: ir.Node, inputs) -> tuple:
    attrs = tuple(sorted((k, _hashable(v)) for k, v in node.attrs.items()))
    return (node.op, tuple(inputs), tuple(sorted(node.control_inputs)), attrs, node.device)


def eliminate_common_subexpressions(program: ir.Program) -> ir.Program:
    seen: dict[tuple, str] = {}
    renames: dict[str, str] = {}
    keep = []
    for node in program.nodes:
        inputs = [renames.get(canonical(t), canonical(t)) for t in node.inputs]
        if node.op in NEVER_MERGED or registry.get(node.op).stateful:
            keep.append(node)
            continue
        key = _key(node, inputs)
        original = seen.get(key)
        if original is None:
            seen[key] = node.name
            keep.append(node)
        else:
            for i in range(len(node.outputs)):
                renames[f"{node.name}:{i}"] = f"{original}:{i}"
    if not renames:
        return program
    merged = {ir.split_tensor_name(k)[0]: ir.split_tensor_name(v)[0] for k, v in renames.items()}
    out = rename_tensors(program, keep, renames)
    # control edges and targets that named a merged node now name its survivor
    nodes = [n if not any(c in merged for c in n.control_inputs)
             else _with_controls(n, tuple(dict.fromkeys(merged.get(c, c) for c in n.control_inputs)))
             for n in out.nodes]
    return out.with_nodes(nodes, targets=tuple(merged.get(t, t) for t in out.targets))


def _with_controls(node, controls):
    from dataclasses import replace

    return replace(node, control_inputs=controls)
