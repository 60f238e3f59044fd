"""Constant folding: pure single-output ops whose inputs are all constants become constants,
up to a size cap (big results stay computed at run time rather than bloating the plan)."""
from __future__ import annotations

import numpy as np

from graphexec import ir
from graphexec.compiler.util import const_node
from graphexec.ops import registry

FOLD_LIMIT_BYTES = 1 << 20


def fold_constants(program: ir.Program) -> ir.Program:
    values: dict[str, np.ndarray] = {}
    out = []
    changed = False
    for node in program.nodes:
        definition = registry.get(node.op)
        if definition.is_constant:
            values[f"{node.name}:0"] = node.attrs["value"]
            out.append(node)
            continue
        folded = _try_fold(node, definition, values)
        if folded is None:
            out.append(node)
        else:
            values[f"{node.name}:0"] = folded
            out.append(const_node(node.name, folded, node.source, node.device))
            changed = True
    return program.with_nodes(out) if changed else program


def _try_fold(node: ir.Node, definition: registry.OpDef, values) -> np.ndarray | None:
    # registry.evaluate refuses what must not run early (stateful ops, feeds, placeholders' kernels raise)
    if node.control_inputs or len(node.outputs) != 1 or not node.inputs or definition.stateful:
        return None
    args = []
    for t in node.inputs:
        name, index = ir.split_tensor_name(t)
        value = values.get(f"{name}:{index}")
        if value is None:
            return None
        args.append(value)
    expected = node.outputs[0]
    size = None if expected.shape is None or None in expected.shape else int(np.prod(expected.shape, dtype=np.int64))
    if size is None or size * expected.dtype.size > FOLD_LIMIT_BYTES:
        return None
    value = registry.evaluate(definition, args, node.attrs)
    if value is None:
        return None  # leave it: the run reports the error against the node
    result = np.asarray(value, dtype=expected.dtype.np)
    result.setflags(write=False)
    return result
