"""IR verifier: run after every pass in tests and when GRAPHEXEC_DEBUG is set."""
from __future__ import annotations

from graphexec import ir
from graphexec.ops import registry


class VerificationError(AssertionError):
    pass


def verify(program: ir.Program, after: str = "") -> ir.Program:
    where = f" after pass {after}" if after else ""
    outputs: dict[str, int] = {}
    for position, node in enumerate(program.nodes):
        if node.name in outputs:
            raise VerificationError(f"duplicate node name '{node.name}'{where}; names must be unique")
        if node.op not in registry.REGISTRY:
            raise VerificationError(f"node '{node.name}' has unknown op '{node.op}'{where}")
        for t in node.inputs:
            producer, index = ir.split_tensor_name(t)
            if producer not in outputs:
                raise VerificationError(f"node '{node.name}' (#{position}) reads '{t}', which is not defined "
                                        f"before it{where}: keep nodes in topological order")
            if index >= outputs[producer]:
                raise VerificationError(f"node '{node.name}' reads '{t}' but '{producer}' has only "
                                        f"{outputs[producer]} outputs{where}")
        for c in node.control_inputs:
            if c not in outputs:
                raise VerificationError(f"node '{node.name}' has control input '{c}' not defined before it{where}")
        outputs[node.name] = len(node.outputs)
    for t in program.fetches:
        producer, index = ir.split_tensor_name(t)
        if producer not in outputs or index >= outputs[producer]:
            raise VerificationError(f"fetch '{t}' does not name an output of the program{where}")
    for t in program.targets:
        if t not in outputs:
            raise VerificationError(f"target '{t}' is not a node of the program{where}")
    return program
