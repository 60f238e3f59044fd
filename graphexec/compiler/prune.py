"""Keep only what the fetches and targets need (data and control inputs, transitively)."""
from __future__ import annotations

from graphexec import errors, ir
from graphexec.ops import registry


def prune(program: ir.Program) -> ir.Program:
    by_name = program.by_name()
    needed: set[str] = set()
    stack = [ir.split_tensor_name(t)[0] for t in program.fetches] + list(program.targets)
    for name in stack:
        if name not in by_name:
            raise errors.InvalidArgumentError(None, None, f"Fetch or target '{name}' is not an op in the graph")
    while stack:  # explicit stack: graphs can be 100,000 nodes deep
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        node = by_name[name]
        for t in node.inputs:
            producer = ir.split_tensor_name(t)[0]
            if producer not in needed:
                stack.append(producer)
        stack.extend(c for c in node.control_inputs if c not in needed)
    if len(needed) == len(program.nodes):
        return program  # nothing dead: the pipeline sees no change
    # Feeds stay even when unused: the plan's feed endpoints must line up with the run's feed values.
    return program.with_nodes(n for n in program.nodes if n.name in needed or registry.get(n.op).is_feed)
