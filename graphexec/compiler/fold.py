"""Constant folding: pure single-output ops whose inputs are all constants become constants,
up to a size cap (big results stay computed at run time rather than bloating the plan); so do ops
whose value their inputs' static types give (Shape, Size and Rank of a fully known shape, as TF's
grappler folds them): the gradient of a mean over a fixed batch is then one product, not five steps."""
from __future__ import annotations

import numpy as np

from graphexec import ir
from graphexec.compiler.util import const_node
from graphexec.ops import registry

FOLD_LIMIT_BYTES = 1 << 20


def fold_constants(program: ir.Program) -> ir.Program:
    values: dict[str, np.ndarray] = {}
    types: dict[str, ir.TensorType] = {}
    out = []
    changed = False
    for node in program.nodes:
        for index, kind in enumerate(node.outputs):
            types[f"{node.name}:{index}"] = kind
        definition = registry.get(node.op)
        if definition.is_constant:
            values[f"{node.name}:0"] = node.attrs["value"]
            out.append(node)
            continue
        folded = _try_fold(node, definition, values)
        if folded is None:
            folded = _static_value(node, definition, types)
        if folded is None:
            out.append(node)
        else:
            values[f"{node.name}:0"] = folded
            out.append(const_node(node.name, folded, node.source, node.device))
            changed = True
    return program.with_nodes(out) if changed else program


def _static_value(node: ir.Node, definition: registry.OpDef, types) -> np.ndarray | None:
    """The value an op's declared rule reads off its inputs' static types (Shape of a [128, 10] tensor),
    or None."""
    if definition.const_value is None or node.control_inputs or definition.stateful or len(node.outputs) != 1:
        return None
    kinds = _looked_up(node, types)
    if kinds is None:
        return None
    value = definition.const_value([registry.Aval(k.dtype, k.shape) for k in kinds],
                                   registry.kernel_attrs(definition, node.attrs))
    return None if value is None else _frozen(value, node.outputs[0])


def _try_fold(node: ir.Node, definition: registry.OpDef, values) -> np.ndarray | None:
    # registry.evaluate refuses what must not run early (stateful ops, feeds, placeholders' kernels raise)
    if node.control_inputs or len(node.outputs) != 1 or not node.inputs or definition.stateful:
        return None
    args = _looked_up(node, values)
    if args is None:
        return None
    expected = node.outputs[0]
    size = None if expected.shape is None or None in expected.shape else int(np.prod(expected.shape, dtype=np.int64))
    if size is None or size * expected.dtype.size > FOLD_LIMIT_BYTES:
        return None
    value = registry.evaluate(definition, args, node.attrs)
    if value is None:
        return None  # leave it: the run reports the error against the node
    return _frozen(value, expected)


def _looked_up(node: ir.Node, table: dict) -> list | None:
    """What `table` holds for each of the node's inputs, or None when it lacks one."""
    found = []
    for t in node.inputs:
        name, index = ir.split_tensor_name(t)
        entry = table.get(f"{name}:{index}")
        if entry is None:
            return None
        found.append(entry)
    return found


def _frozen(value, kind: ir.TensorType) -> np.ndarray:
    result = np.asarray(value, dtype=kind.dtype.np)
    result.setflags(write=False)
    return result
