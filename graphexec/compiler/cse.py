"""Common-subexpression elimination: pure nodes with the same op, inputs and attrs become one."""
from __future__ import annotations

from graphexec import ir
from graphexec.compiler.util import canonical, rename_tensors, with_controls
from graphexec.ops import registry


def _mergeable(definition: registry.OpDef) -> bool:
    """Two such nodes with equal op, inputs and attrs compute the same value. Feeds and placeholders
    are distinct values however alike; no-ops exist for their own control edges."""
    return not (definition.stateful or definition.is_feed or definition.is_placeholder or definition.is_noop
                or definition.is_fused)


def eliminate_common_subexpressions(program: ir.Program) -> ir.Program:
    seen: dict[tuple, str] = {}
    renames: dict[str, str] = {}
    keep = []
    for node in program.nodes:
        inputs = tuple([renames.get(canonical(t), canonical(t)) for t in node.inputs])
        if not _mergeable(registry.get(node.op)):
            keep.append(node)
            continue
        # attrs are hashable and compare by type and content: 1, 1.0 and True stay apart
        key = (node.op, inputs, tuple(sorted(node.control_inputs)), node.attrs, node.device)
        original = seen.setdefault(key, node.name)
        if original == node.name:
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
             else with_controls(n, tuple(dict.fromkeys(merged.get(c, c) for c in n.control_inputs)))
             for n in out.nodes]
    return out.with_nodes(nodes, targets=tuple(merged.get(t, t) for t in out.targets))
