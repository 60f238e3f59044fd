"""Attach sub-plans to functional nodes (If, While, WhileGrad) before the program is pruned.

A functional node names each of its functions by argument nodes (FuncArg) and result tensors. The
function's body is every ancestor of its results (data, control and the functions of nested callers);
it becomes a program of its own, fed at its arguments and fetching its results, compiled by the same
pipeline and attached to the caller as its `*_plan` attr. The body nodes stay out of the outer plan:
nothing outside the function reads them, so `prune` drops them there.

A graph from the wire is untrusted, so every reference is checked here and a bad one is an
InvalidArgumentError naming the node: an argument that is not a FuncArg, a result that is not a tensor,
a reference to the caller itself or a later node (which is how a function could call itself), a body
reaching a FuncArg that is not among its arguments, argument or result types that disagree with the
caller's, and nesting deeper than MAX_NESTING.
"""
from __future__ import annotations

from graphexec import dtypes, errors, ir
from graphexec.compiler.util import canonical, type_of
from graphexec.ops.functional_ops import FUNCTIONS, FuncArg

MAX_NESTING = 32


def attach_functions(program: ir.Program, compile_function, depth: int = 0) -> ir.Program:
    """`compile_function(sub_program, name)` compiles one function's program to a Plan."""
    if not any(node.op in FUNCTIONS for node in program.nodes):
        return program
    if depth >= MAX_NESTING:
        raise errors.InvalidArgumentError(None, None, f"control flow is nested more than {MAX_NESTING} deep")
    by_name = program.by_name()
    position = {node.name: i for i, node in enumerate(program.nodes)}
    fed = {ir.split_tensor_name(t)[0] for t in program.feeds}
    roots = [ir.split_tensor_name(t)[0] for t in program.fetches] + list(program.targets)
    needed = _closure([r for r in roots if r in by_name], by_name, position, stop=fed, nested=False)
    compiled: dict[tuple, object] = {}
    out = []
    for node in program.nodes:
        if node.op in FUNCTIONS and node.name in needed:
            _function_refs(node, by_name, position)
            plans = {}
            for index, (args_attr, outputs_attr, plan_attr) in enumerate(FUNCTIONS[node.op]):
                args, outputs = tuple(node.attrs[args_attr]), tuple(node.attrs[outputs_attr])
                key = (args, outputs)
                if key not in compiled:
                    sub = _function_program(node, index, args, outputs, program, by_name, position)
                    compiled[key] = compile_function(sub, f"{node.name}/{plan_attr}")
                plans[plan_attr] = compiled[key]
            node = ir.Node(node.name, node.op, node.inputs, node.control_inputs, ir.Attrs({**node.attrs, **plans}),
                           node.outputs, node.device, node.source)
        out.append(node)
    return program.with_nodes(out)


def _invalid(node: ir.Node, problem: str) -> errors.InvalidArgumentError:
    where = f", created at {node.source}" if node.source else ""
    return errors.InvalidArgumentError(None, node.name, f"node '{node.name}' ({node.op}{where}): {problem}")


def _closure(roots, by_name, position, stop=frozenset(), nested=True) -> set[str]:
    """Names of `roots` and everything they depend on through inputs and control inputs, and (`nested`)
    through the functions of the callers among them."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = by_name[name]
        if name in stop:
            continue
        stack.extend(ir.split_tensor_name(t)[0] for t in node.inputs)
        stack.extend(node.control_inputs)
        if nested and node.op in FUNCTIONS:
            stack.extend(_function_refs(node, by_name, position))
    return seen


def _function_refs(node, by_name, position) -> list[str]:
    """The nodes `node`'s functions name, each checked to be an earlier node of the graph."""
    refs = []
    for args_attr, outputs_attr, _ in FUNCTIONS[node.op]:
        for ref in (*node.attrs[args_attr], *(ir.split_tensor_name(t)[0] for t in node.attrs[outputs_attr])):
            if ref not in by_name:
                raise _invalid(node, f"its {args_attr[:-5]} function names '{ref}', which is not a node of the graph")
            if position[ref] >= position[node.name]:
                raise _invalid(node, f"its {args_attr[:-5]} function names '{ref}', which is not an earlier node "
                                     f"(a function cannot contain its caller)")
            refs.append(ref)
    return refs


def _function_program(node, index, args, outputs, program, by_name, position) -> ir.Program:
    name = FUNCTIONS[node.op][index][0][:-5]
    for arg in args:
        if by_name[arg].op != FuncArg.name:
            raise _invalid(node, f"argument '{arg}' of its {name} function is a {by_name[arg].op}, not a FuncArg")
    if len(set(args)) != len(args):
        raise _invalid(node, f"its {name} function names an argument twice")
    for t in outputs:
        producer, i = ir.split_tensor_name(t)
        if i >= len(by_name[producer].outputs):
            raise _invalid(node, f"result '{t}' of its {name} function is not an output of '{producer}'")
    _check_types(node, index, name, args, outputs, by_name)
    roots = [ir.split_tensor_name(t)[0] for t in outputs]
    body = _closure(roots, by_name, position)
    # FuncArgs of nested functions are bound by their callers: only the body's own level is checked here
    own = _closure(roots, by_name, position, nested=False)
    strays = sorted(n for n in own if by_name[n].op == FuncArg.name and n not in args)
    if strays:
        raise _invalid(node, f"its {name} function reads {strays}, which are not among its arguments")
    nodes = sorted((by_name[n] for n in body | set(args)), key=lambda n: position[n.name])
    return ir.Program(tuple(nodes), feeds=tuple(f"{a}:0" for a in args),
                      fetches=tuple(canonical(t) for t in outputs), seed=program.seed)


def _check_types(node, index, name, args, outputs, by_name) -> None:
    inputs = [type_of(by_name, t).dtype for t in node.inputs]
    results = [t.dtype for t in node.outputs]
    if node.op == "If":
        inputs = inputs[1:]
        expected = results
    elif FUNCTIONS[node.op][index][0] == "cond_args":
        expected = [dtypes.bool]
    elif FUNCTIONS[node.op][index][0] == "body_args":
        expected = inputs[:len(outputs)]
    else:  # the VJP of WhileGrad: one gradient per loop input
        expected = results
    got = [type_of(by_name, t).dtype for t in outputs]
    if got != expected:
        raise _invalid(node, f"its {name} function returns {[d.name for d in got]} where "
                             f"{[d.name for d in expected]} are expected")
    for arg, dtype in zip(args, inputs):
        if by_name[arg].outputs[0].dtype is not dtype:
            raise _invalid(node, f"argument '{arg}' of its {name} function is {by_name[arg].outputs[0].dtype.name} "
                                 f"but receives {dtype.name}")
