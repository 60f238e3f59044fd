"""Typing received nodes: what a server knows of a graph's tensors as its nodes arrive.

Decoding never trusts the sender's types: each node's outputs are re-inferred from its op's rules
(`registry.infer`, as graph building runs them) against the nodes before it. An unknown op, a
dangling input or a bad attribute is an InvalidArgumentError naming the node, its op and the user's
source line. Nothing here is protobuf; graphexec.rpc.convert reads the fields and calls `add_node`.
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes, errors, ir
from graphexec.framework import merge_shapes
from graphexec.ops import registry


def _where(name: str, op: str, source: str) -> str:
    return f"node '{name}' ({op or 'no op'}{', created at ' + source if source else ''})"


def _invalid(name: str, op: str, source: str, problem: str) -> errors.InvalidArgumentError:
    return errors.InvalidArgumentError(None, None, f"{_where(name, op, source)}: {problem}")


class GraphTypes:
    """Each tensor's abstract value, and each node's output count, of the nodes typed so far."""

    def __init__(self, avals=None, output_counts=None):
        self.avals: dict[str, registry.Aval] = dict(avals or {})
        self.output_counts: dict[str, int] = dict(output_counts or {})

    def copy(self) -> GraphTypes:
        return GraphTypes(self.avals, self.output_counts)

    def add_node(self, name: str, op: str, inputs: tuple, control_inputs: tuple, attrs: dict, source: str,
                 declared_shapes: list, inferred: dict | None = None) -> tuple[ir.TensorType, ...]:
        """The output types of a received node (which then becomes an input others may name).

        `declared_shapes` are the sender's (set_shape-refined) output shapes, merged into the inferred
        ones and never contradicting them; empty when the sender declared none. `inferred`: outputs
        already inferred for nodes of this upload, by `inference_key` (see there), which this extends.
        """
        # Hot for large uploads: the error prefix is built only on errors.
        output_counts, avals = self.output_counts, self.avals
        if not name or name in output_counts:
            raise _invalid(name, op, source, "node names must be unique and non-empty")
        definition = registry.REGISTRY.get(op)
        if definition is None or definition.compiler_only:
            raise _invalid(name, op, source, f"unknown op '{op}'")
        args = []
        for tensor in inputs:
            aval = avals.get(tensor)  # the common spelling, "node:index", first
            if aval is None:
                producer, index = ir.split_tensor_name(tensor)
                if index >= output_counts.get(producer, 0):
                    raise _invalid(name, op, source, f"input '{tensor}' is not an output of an earlier node")
                aval = avals[f"{producer}:{index}"]
            args.append(aval)
        for control in control_inputs:
            if control not in output_counts:
                raise _invalid(name, op, source, f"control input '{control}' is not an earlier node")
        key = inference_key(op, args, attrs) if inferred is not None else None
        known = inferred.get(key) if key is not None else None
        if known is None:
            outputs = _infer_outputs(definition, args, attrs, (name, op, source))
            known = outputs, _types(outputs)
            if key is not None:
                inferred[key] = known
        outputs, types = known
        if declared_shapes:
            outputs = _with_declared_shapes(outputs, declared_shapes, (name, op, source))
            types = _types(outputs)
        output_counts[name] = len(outputs)
        if len(outputs) == 1:
            avals[name + ":0"] = outputs[0]
        else:
            for i, aval in enumerate(outputs):
                avals[f"{name}:{i}"] = aval
        return types


def _types(outputs) -> tuple[ir.TensorType, ...]:
    return tuple([ir.TensorType(a.dtype, a.shape) for a in outputs])


def inference_key(op: str, args: list, attrs) -> tuple | None:
    """What a node's inferred outputs depend on: its op, its inputs' dtypes, shapes and build-time values
    (as bytes: arrays do not compare as keys), and its attrs (which compare arrays by content); None for a
    node with a large constant among its attrs (hashing it would cost more than its rules).

    Graphs repeat the same node under other names (a layer's ops, each variable's update, an unrolled
    loop), and rules cost several times their key: W5's upload of 1,000 constants and 1,000 alternating
    adds and multiplies took ~45 ms of typing, ~29 with the outputs of like nodes reused. Rules are pure
    functions of these, so a reused result is the result. The reuse lasts one upload (a decoded graph
    must not keep another graph's constants alive)."""
    for value in attrs.values():
        if type(value) is np.ndarray and value.size > registry.BUILD_TIME_VALUE_LIMIT:
            return None
    return op, attrs, tuple([(a.dtype, a.shape, None) if a.value is None else
                             (a.dtype, a.shape, a.value.dtype.str, a.value.shape, a.value.tobytes()) for a in args])


def _infer_outputs(definition, args, attrs, node) -> list[registry.Aval]:
    """The op's rules, as graph building runs them; any failure is the sender's malformed node."""
    try:
        _, out = registry.infer(definition, args, attrs)  # the node keeps its attrs as sent: they are hashed
    except registry.ShapeError as exc:  # a wrong attr, arity, shape or dtype: names the attr or the rule
        raise _invalid(*node, str(exc)) from None
    # Attrs are checked against the schema first; these are rules meeting values no graph builder makes.
    except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError) as exc:
        raise _invalid(*node, f"{type(exc).__name__}: {exc}") from None
    for aval in out:
        if not (type(aval.dtype) is dtypes.DType and _valid_shape(aval.shape)):
            raise _invalid(*node, f"attributes give an invalid output type {aval.dtype!r}{aval.shape!r}")
    return out


def _valid_shape(shape) -> bool:
    if shape is None or shape == ():
        return True
    return type(shape) is tuple and all(d is None or type(d) is int and d >= 0 for d in shape)


def _with_declared_shapes(outputs, declared, node) -> list[registry.Aval]:
    if len(declared) != len(outputs):
        raise _invalid(*node, f"{len(declared)} output shapes declared for {len(outputs)} outputs")
    try:
        return [registry.Aval(a.dtype, merge_shapes(a.shape, shape, "declared output shape"), a.value)
                for a, shape in zip(outputs, declared)]
    except ValueError as exc:
        raise _invalid(*node, str(exc)) from None
