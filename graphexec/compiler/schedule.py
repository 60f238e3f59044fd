"""Variable reads and updates run as soon as they can: each moves up to just after the last node it must
follow.

Why: a plan runs its nodes in the program's order, and a training graph lists its optimizer after the
whole backward pass (the optimizer's nodes, and its reads of its own variables such as Adam's
beta1_power, are built after the gradients). A worker on Redis sends each large new value to the store
as soon as the run last writes it (server/staging.py), so an update that runs early lets its values
travel while the rest of the backward pass computes: W10's dense layer is updated before the
convolutions' gradients. Its gradient is freed earlier too.

A variable read or update follows the steps that make its inputs, its control inputs, every earlier
update of a variable it touches (and, for an update, every earlier read of one), and every earlier node
whose body (an If or While function, a fused chain) touches variables at all. Constants and feeds
constrain nothing (they are not steps: they go first), and a no-op passes on what it follows. Every
other node keeps its place, so a run computes the same values in the same order, but for these.
"""
from __future__ import annotations

from graphexec import ir
from graphexec.compiler.plan import Plan
from graphexec.ops import registry
from graphexec.ops.state_ops import VARIABLE_OPS, written_variables

ALL = "every variable"  # what a node with variable ops in its body touches


def schedule_updates_early(program: ir.Program) -> ir.Program:
    nodes = program.nodes
    if not any(node.op in VARIABLE_OPS for node in nodes):
        return program
    # When each node's value (or, for a no-op, its control edges) is ready: a step that keeps its place
    # at its index; a read or an update, and a no-op, right after the latest of what it follows (-1: at
    # once). Constants and feeds are ready from the start, and go first.
    ready: dict[str, int] = {}
    last_write: dict[str, int] = {}  # variable -> when its last update so far runs
    last_touch: dict[str, int] = {}  # variable -> when its last read or update so far runs
    barrier = -1  # when the last node so far that touches every variable runs
    keys = []
    for i, node in enumerate(nodes):
        definition = registry.get(node.op)
        touched = () if definition.is_noop else _touched(node)
        if definition.runs_as_step and (not touched or touched == ALL):  # keeps its place
            keys.append((i, 0, i))
            ready[node.name] = i
            if touched == ALL:
                barrier = i
            continue
        if not definition.runs_as_step and not definition.is_noop:  # a constant or a feed
            keys.append((-2, 0, i))
            ready[node.name] = -1
            continue
        writes = bool(touched) and node.op != "ReadVariable"
        place = max((-1, *(ready.get(ir.split_tensor_name(t)[0], -1) for t in node.inputs),
                     *(ready.get(c, -1) for c in node.control_inputs)))
        if touched:
            place = max((place, barrier, *((last_touch if writes else last_write).get(v, -1) for v in touched)))
            for v in touched:
                last_touch[v] = max(last_touch.get(v, -1), place)
                if writes:
                    last_write[v] = place
        keys.append((place, 1, i))  # right after the node at `place`; several there: in their own order
        ready[node.name] = place
    order = sorted(range(len(nodes)), key=keys.__getitem__)
    if order == list(range(len(nodes))):
        return program
    return program.with_nodes(nodes[i] for i in order)


def _touched(node: ir.Node):
    """The variables `node` reads or writes: a tuple of names, ALL, or () for none."""
    for value in node.attrs.values():
        if isinstance(value, Plan) and value.step_ops() & VARIABLE_OPS:
            return ALL
        if isinstance(value, ir.Subprogram) and any(n.op in VARIABLE_OPS for n in value.nodes):
            return ALL
    if node.op == "ReadVariable":
        return (node.attrs["var"],)
    return written_variables(node.op, node.attrs)
