"""Helpers shared by passes: consumer maps and renaming of tensor references."""
from __future__ import annotations

import functools

from dataclasses import replace

from graphexec import dtypes, ir


def consumers(nodes) -> dict[str, list[str]]:
    """node name -> names of nodes that use any of its outputs as data (one entry per distinct user)."""
    users: dict[str, list[str]] = {}
    for node in nodes:
        seen = set()
        for t in node.inputs:
            producer = ir.split_tensor_name(t)[0]
            if producer not in seen:
                seen.add(producer)
                users.setdefault(producer, []).append(node.name)
    return users


def control_users(nodes) -> set[str]:
    return {c for node in nodes for c in node.control_inputs}


def pinned_nodes(program: ir.Program) -> set[str]:
    """Nodes whose identity matters beyond their data users: fetched, targeted or ordered on."""
    return ({ir.split_tensor_name(t)[0] for t in program.fetches} | set(program.targets)
            | control_users(program.nodes))


def sole_reader(program: ir.Program):
    """A test `only_feeds(node, user)` over `program`: `node`'s value is read by `user` alone (one output, one
    consumer, no control edges, not fetched, targeted or ordered on, the same device): an epilogue fusion may
    then compute it inside `user`'s kernel."""
    users, pinned = consumers(program.nodes), pinned_nodes(program)

    def only_feeds(node: ir.Node, user: ir.Node) -> bool:
        return (len(node.outputs) == 1 and not node.control_inputs and node.name not in pinned
                and users.get(node.name) == [user.name] and node.device == user.device)

    return only_feeds


def producer(by_name: dict[str, ir.Node], tensor: str) -> ir.Node | None:
    """The node of `by_name` whose first output `tensor` is, or None (another output, or no such node)."""
    name, index = ir.split_tensor_name(canonical(tensor))
    return by_name.get(name) if index == 0 else None


def type_of(by_name: dict[str, ir.Node], tensor: str) -> ir.TensorType:
    """The type of `tensor` ("node:index"), produced by a node of `by_name`."""
    name, index = ir.split_tensor_name(tensor)
    return by_name[name].outputs[index]


@functools.lru_cache(maxsize=1 << 20)
def canonical(tensor_name: str) -> str:
    node, index = ir.split_tensor_name(tensor_name)
    return f"{node}:{index}"


def rename_tensors(program: ir.Program, nodes, renames: dict[str, str]) -> ir.Program:
    """Replace every reference to tensor `old` by `new` (inputs and fetches); renames may chain."""
    if not renames:
        return program.with_nodes(nodes)

    def resolve(name):
        seen = 0
        while name in renames and seen <= len(renames):  # a chain can be as long as the renames
            name = renames[name]
            seen += 1
        return name

    out = []
    for node in nodes:
        inputs = tuple(resolve(canonical(t)) for t in node.inputs)
        out.append(node if inputs == node.inputs else with_inputs(node, inputs))
    fetches = tuple(resolve(canonical(t)) for t in program.fetches)
    return program.with_nodes(out, fetches=fetches)


def with_inputs(node: ir.Node, inputs: tuple[str, ...]) -> ir.Node:
    """`replace(node, inputs=inputs)`, at half the cost (passes rewrite thousands of nodes)."""
    return ir.Node(node.name, node.op, inputs, node.control_inputs, node.attrs, node.outputs, node.device,
                   node.source)


def with_controls(node: ir.Node, control_inputs: tuple[str, ...]) -> ir.Node:
    return replace(node, control_inputs=control_inputs)


def const_node(name: str, value, source: str = "", device: str = "") -> ir.Node:
    dtype = dtypes.from_numpy(value.dtype)
    return ir.Node(name=name, op="Const", attrs=ir.Attrs({"value": value, "dtype": dtype}),
                   outputs=(ir.TensorType(dtype, tuple(value.shape)),), device=device, source=source)
