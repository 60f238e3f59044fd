"""Bind the run's feeds: fed tensors become Feed nodes; a needed placeholder that nobody fed is an error
naming it and the user's line. (An unfed PlaceholderWithDefault is left to `simplify`, which forwards
its default like an Identity.)"""
from __future__ import annotations

from dataclasses import replace

from graphexec import errors, ir
from graphexec.compiler.util import canonical, rename_tensors
from graphexec.ops import registry
from graphexec.ops.internal_ops import Feed


def bind_feeds(program: ir.Program) -> ir.Program:
    fed: dict[str, set[int]] = {}
    for t in program.feeds:
        node, index = ir.split_tensor_name(t)
        fed.setdefault(node, set()).add(index)
    nodes, renames = [], {}
    for node in program.nodes:
        indices = fed.get(node.name)
        if indices and len(node.outputs) == 1:
            nodes.append(feed_node(node.name, node.outputs[0], node.source, node.device))
        elif indices:  # some outputs of a multi-output op are fed: feed them beside the op
            nodes.append(node)
            for i in sorted(indices):
                name = f"{node.name}/__feed_{i}"
                nodes.append(feed_node(name, node.outputs[i], node.source, node.device))
                renames[f"{node.name}:{i}"] = f"{name}:0"
        else:
            nodes.append(node)
    if renames:
        feeds = tuple(renames.get(canonical(t), canonical(t)) for t in program.feeds)
        return replace(rename_tensors(program, nodes, renames), feeds=feeds)
    return program.with_nodes(nodes, feeds=tuple(canonical(t) for t in program.feeds))


def feed_node(name, tensor_type, source, device) -> ir.Node:
    return ir.Node(name=name, op=Feed.name, attrs=ir.Attrs({"dtype": tensor_type.dtype}), outputs=(tensor_type,),
                   source=source, device=device)


def require_feeds(program: ir.Program) -> ir.Program:
    """After pruning: every placeholder still needed must have been fed."""
    for node in program.nodes:
        if registry.get(node.op).is_placeholder:
            t = node.outputs[0]
            raise errors.InvalidArgumentError(
                None, node.name,
                f"You must feed a value for placeholder tensor '{node.name}' with dtype {t.dtype.name} and shape "
                f"{ir.format_shape(t.shape)} (created at {node.source})")
    return program
