"""Fusion of elementwise chains into one `Fused` node, so a chain costs one plan step.

A producer joins its consumer's group when both are elementwise, the producer has exactly one
consumer, is not fetched, and neither carries control edges. Such a group is a tree ending at its
last node (so it stays convex). The Fused node keeps the last node's name; its `body` attr is an
`ir.Subprogram` whose parameters are the Fused node's inputs, and `covers` names the fused nodes:

    %y: float32[4] = Fused(%x, %c) {covers=('m', 'y')} { %f0 = Mul(%p0, %p1); %f1 = Add(%f0, %p1) }
"""
from __future__ import annotations

from graphexec import ir
from graphexec.compiler.util import canonical, consumers, pinned_nodes
from graphexec.ops import registry
from graphexec.ops.internal_ops import Fused

FUSED = Fused.name


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
    local: dict[str, str] = {}  # group member -> its body node ("f3")
    params: dict[str, str] = {}  # the Fused node's inputs (canonical tensor names) -> parameter ("p0")
    body = []
    for node in group:
        inputs = []
        for t in node.inputs:
            name = local.get(ir.split_tensor_name(t)[0])
            if name is None:
                t = canonical(t)
                name = params.get(t)
                if name is None:
                    name = params[t] = f"p{len(params)}"
            inputs.append(name)
        local[node.name] = name = f"f{len(body)}"
        body.append(ir.Node(name, node.op, tuple(inputs), (), node.attrs, node.outputs))
    last = group[-1]
    attrs = ir.Attrs({"body": ir.Subprogram(tuple(params.values()), tuple(body)), "covers": tuple(local)})
    return ir.Node(name=last.name, op=FUSED, inputs=tuple(params), attrs=attrs, outputs=last.outputs,
                   device=last.device, source=last.source)
