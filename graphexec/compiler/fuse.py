"""Fusion of elementwise chains into one `Fused` node, so a chain costs one plan step.

A producer joins its consumer's group when both are elementwise, the producer has exactly one
consumer, is not fetched, and neither carries control edges. Such a group is a tree ending at its
last node (so it stays convex). The Fused node keeps the last node's name; its `program` attr lists
(op, operands, attrs) with operands >= 0 indexing the fused node's inputs and < 0 earlier results.
"""
from __future__ import annotations

from graphexec import ir
from graphexec.compiler.util import canonical, consumers, pinned_nodes
from graphexec.ops import registry


def _fusable(node: ir.Node) -> bool:
    return (node.op in registry.REGISTRY and registry.REGISTRY[node.op].elementwise
            and len(node.outputs) == 1 and not node.control_inputs)


def fuse_elementwise(program: ir.Program) -> ir.Program:
    by_name = program.by_name()
    users = consumers(program.nodes)
    pinned = pinned_nodes(program)
    members: dict[str, list[str]] = {}
    for node in program.nodes:
        if not _fusable(node):
            continue
        joined = []
        for t in node.inputs:
            producer = ir.split_tensor_name(t)[0]
            p = by_name[producer]
            if (producer in members and users.get(producer) == [node.name] and producer not in pinned
                    and p.device == node.device):
                joined.append(members.pop(producer))
        # Extend the largest group in place (a 100,000-node chain must stay linear); producers' groups
        # are disjoint trees, so any concatenation of them followed by this node is topological.
        joined.sort(key=len, reverse=True)
        group = joined[0] if joined else []
        for other in joined[1:]:
            group.extend(other)
        group.append(node.name)
        members[node.name] = group
    fused = {last: group for last, group in members.items() if len(group) > 1}
    if not fused:
        return program
    absorbed = {m for group in fused.values() for m in group[:-1]}
    out = []
    for node in program.nodes:
        if node.name in absorbed:
            continue
        out.append(_fused_node([by_name[m] for m in fused[node.name]]) if node.name in fused else node)
    return program.with_nodes(out)


def _fused_node(group: list[ir.Node]) -> ir.Node:
    position = {n.name: i for i, n in enumerate(group)}
    inputs: list[str] = []
    program = []
    for node in group:
        operands = []
        for t in node.inputs:
            producer, _ = ir.split_tensor_name(t)
            if producer in position:
                operands.append(-(position[producer] + 1))
            else:
                t = canonical(t)
                if t not in inputs:
                    inputs.append(t)
                operands.append(inputs.index(t))
        program.append((node.op, tuple(operands), node.attrs, node.outputs[0]))
    last = group[-1]
    return ir.Node(name=last.name, op="Fused", inputs=tuple(inputs), attrs={"program": tuple(program), "covers": tuple(n.name for n in group)},
                   outputs=last.outputs, device=last.device, source=last.source)
