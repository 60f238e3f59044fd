"""Functional control flow: If, While and WhileGrad run sub-plans compiled from functions of the graph.

A function is a set of the graph's own nodes, traced by `framework.FunctionScope`: the caller names its
argument nodes (FuncArg, one per caller input) and its result tensors in string-list attrs, so a graph
stays a flat node list (same wire format, same digest). The compiler (`compiler/functions.py`) turns the
ancestors of each function's results into a sub-plan and attaches it to the caller as `*_plan`; only the
branch taken runs, and a loop runs its body sub-plan until its cond sub-plan says stop.

Gradients: an If's gradient is an If over the branches' vector-Jacobian products, traced into the same
function scopes (so they read the forward branch's values without copying them). A While's gradient is a
WhileGrad: it reruns the forward loop recording each iteration's loop values, then runs the body's VJP
backwards over them. The body's VJP recomputes the body from those values, so a random op inside a
differentiated loop draws again for the gradient.
"""
from __future__ import annotations

import weakref

from graphexec import dtypes
from graphexec.framework import FunctionScope, Operation, Tensor, apply_op
from graphexec.gradients import gradients
from graphexec.ir import ShapeAttr
from graphexec.ops.array_ops import zeros_like
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op

# Which attrs of a functional op name a function: (argument node names, result tensor names, plan attr).
FUNCTIONS = {
    "If": (("then_args", "then_outputs", "then_plan"), ("else_args", "else_outputs", "else_plan")),
    "While": (("cond_args", "cond_outputs", "cond_plan"), ("body_args", "body_outputs", "body_plan")),
    "WhileGrad": (("cond_args", "cond_outputs", "cond_plan"), ("body_args", "body_outputs", "body_plan"),
                  ("vjp_args", "vjp_outputs", "vjp_plan")),
}

# The traced scopes of each functional op built in this process (gradients re-enter them).
_TRACED: weakref.WeakKeyDictionary[Operation, tuple] = weakref.WeakKeyDictionary()


def _function_attrs(*names) -> dict:
    out = {}
    for name in names:
        out[f"{name}_args"] = attr("list(string)")
        out[f"{name}_outputs"] = attr("list(string)")
        out[f"{name}_plan"] = attr("any", None)  # the compiled sub-plan, attached by the compiler
    return out


def _check_arity(args, attrs, *names, extra=0):
    for name in names:
        if len(attrs[f"{name}_args"]) != len(args) - extra:
            raise ShapeError(f"function '{name}' takes {len(attrs[f'{name}_args'])} arguments but the op has "
                             f"{len(args) - extra} inputs")


# -- kernels ------------------------------------------------------------------------------------------------
def _call(ctx, plan, args) -> list:
    return plan.run(ctx, list(args), ctx.stats)


def _holds(ctx, cond_plan, args) -> bool:
    ctx.check_interrupt()  # a loop that never ends still stops at the run's deadline or cancellation
    return bool(ctx.to_host(_call(ctx, cond_plan, args)[0]))


def _one_or_all(values):
    return values[0] if len(values) == 1 else list(values)


def _if(ctx, pred, *inputs, then_plan, else_plan, **_):
    branch = then_plan if bool(ctx.to_host(pred)) else else_plan
    return _one_or_all(_call(ctx, branch, inputs))


def _while(ctx, *inputs, cond_plan, body_plan, body_outputs, **_):
    n = len(body_outputs)
    state, invariant = list(inputs[:n]), list(inputs[n:])
    while _holds(ctx, cond_plan, state + invariant):
        state = _call(ctx, body_plan, state + invariant)
    return _one_or_all(state)


def _while_grad(ctx, *inputs, cond_plan, body_plan, vjp_plan, body_outputs, vjp_outputs, **_):
    n, total = len(body_outputs), len(vjp_outputs)
    state, invariant, d_state = list(inputs[:n]), list(inputs[n:total]), list(inputs[total:])
    history = []
    while _holds(ctx, cond_plan, state + invariant):
        history.append(state)
        state = _call(ctx, body_plan, state + invariant)
    d_invariant = [ctx.xp.zeros_like(v) for v in invariant]
    for past in reversed(history):
        ctx.check_interrupt()
        out = _call(ctx, vjp_plan, past + invariant + d_state)
        d_state = list(out[:n])
        d_invariant = [a + b for a, b in zip(d_invariant, out[n:])]
    return _one_or_all(d_state + d_invariant)


# -- rules --------------------------------------------------------------------------------------------------
def _if_shape(args, attrs):
    if args[0].dtype is not dtypes.bool or args[0].rank not in (0, None):
        raise ShapeError(f"the predicate must be a bool scalar, got {args[0].dtype.name}{list(args[0].shape or [])}")
    _check_arity(args, attrs, "then", "else", extra=1)
    if len(attrs["Tout"]) != len(attrs["output_shapes"]) or not attrs["Tout"]:
        raise ShapeError("If needs one output shape per output type, and at least one output")
    return [s.dims for s in attrs["output_shapes"]]


def _while_shape(args, attrs):
    _check_arity(args, attrs, "cond", "body")
    n = len(attrs["body_outputs"])
    if len(attrs["cond_outputs"]) != 1 or not 0 < n <= len(args) or len(attrs["output_shapes"]) != n:
        raise ShapeError(f"While needs one cond result, and one body result and shape per loop variable "
                         f"(at most {len(args)})")
    return [s.dims for s in attrs["output_shapes"]]


def _while_grad_shape(args, attrs):
    total = len(attrs["vjp_outputs"])
    n = len(attrs["body_outputs"])
    if not 0 < n <= total or len(args) != total + n or len(attrs["output_shapes"]) != total:
        raise ShapeError(f"WhileGrad takes the loop's inputs, then one gradient per loop variable; got {len(args)}")
    _check_arity(args, attrs, "cond", "body", extra=n)
    _check_arity(args, attrs, "vjp")
    return [s.dims for s in attrs["output_shapes"]]


def _func_arg(ctx, **_):
    raise AssertionError("a function argument is bound by its caller")


FuncArg = op("FuncArg", shape=lambda args, attrs: attrs["shape"].dims, dtype=lambda args, attrs: attrs["dtype"],
             kernel=_func_arg, grad=NOT_DIFFERENTIABLE, inputs=(), is_placeholder=True,
             attrs={"dtype": attr("type"), "shape": attr("shape", ShapeAttr(None))})


# -- gradients ----------------------------------------------------------------------------------------------
def _vjp(scope: FunctionScope, args: list[Tensor], outputs: list[Tensor], d_outputs: list[Tensor]):
    """Trace, into `scope`, d(outputs)/d(args) weighted by new arguments standing for `d_outputs`.
    Returns (the d_output arguments, one gradient per arg (zeros where none), extra captured arguments)."""
    d_args = [scope.add_arg(d.dtype, d._shape, d) for d in d_outputs]
    start = len(scope.args)
    with scope.entered():
        scope.graph._name_stack = scope.name + "_grad"
        grads = gradients(outputs, args, grad_ys=d_args)
        grads = [g if g is not None else zeros_like(a) for g, a in zip(grads, args)]
    return d_args, grads, scope.args[start:]


def _zeros_for_missing(op, d_outputs):
    return [zeros_like(t) if d is None else d for t, d in zip(op.outputs, d_outputs)]


def _if_grad(op, *d_outputs):
    then, else_ = _TRACED[op]
    pred, inputs = op.inputs[0], list(op.inputs[1:])
    d_outputs = _zeros_for_missing(op, d_outputs)
    branches = []
    for scope, args, outputs in (then, else_):
        branches.append((scope, args, *_vjp(scope, args, outputs, d_outputs)))
    (t_scope, t_args, t_d, t_grads, t_extra), (e_scope, e_args, e_d, e_grads, e_extra) = branches
    t_pad = [t_scope.add_arg(a.dtype, a._shape) for a in e_extra]
    e_pad = [e_scope.add_arg(a.dtype, a._shape) for a in t_extra]
    grad_inputs = inputs + _outer(t_scope, t_extra) + _outer(e_scope, e_extra) + d_outputs
    then_fn = (t_scope, t_args + t_extra + t_pad + t_d, t_grads)
    else_fn = (e_scope, e_args + e_pad + e_extra + e_d, e_grads)
    grads = make_if(pred, grad_inputs, then_fn, else_fn, [t._shape for t in inputs], name="If")
    return [None] + [g if t.dtype.is_floating else None for g, t in zip(grads, inputs)]


def _while_grad_rule(op, *d_outputs):
    cond, body, back_prop = _TRACED[op]
    if not back_prop:
        return [None] * len(op.inputs)
    (c_scope, c_args, c_out), (b_scope, b_args, b_out) = cond, body
    d_outputs = _zeros_for_missing(op, d_outputs)
    d_args, grads, extra = _vjp(b_scope, b_args, b_out, d_outputs)
    c_pad = [c_scope.add_arg(a.dtype, a._shape) for a in extra]
    with b_scope.entered():
        b_scope.graph._name_stack = b_scope.name + "_grad"
        grads = grads + [zeros_like(a) for a in extra]
    inputs = list(op.inputs) + _outer(b_scope, extra) + d_outputs
    shapes = [t._shape for t in inputs[:len(grads)]]  # a gradient has its input's shape
    attrs = {**_function(c_args + c_pad, c_out, "cond"), **_function(b_args + extra, b_out, "body"),
             **_function(b_args + extra + d_args, grads, "vjp"),
             "output_shapes": [ShapeAttr(s) for s in shapes]}
    outputs = apply_op("WhileGrad", inputs, attrs, "WhileGrad").outputs
    return [g if t.dtype.is_floating else None for g, t in zip(outputs, op.inputs)]


def _outer(scope: FunctionScope, args: list[Tensor]) -> list[Tensor]:
    """The caller-side tensors of arguments `scope` captured."""
    position = {id(a): i for i, a in enumerate(scope.args)}
    return [scope.outer[position[id(a)]] for a in args]


If = op("If", shape=_if_shape, dtype=lambda args, attrs: list(attrs["Tout"]), kernel=_if, grad=_if_grad,
        stateful=True, inputs=("cond", "*inputs"),
        attrs={**_function_attrs("then", "else"), "Tout": attr("list(type)"), "output_shapes": attr("list(shape)")})
While = op("While", shape=_while_shape, dtype=lambda args, attrs: [a.dtype for a in args[:len(attrs["body_outputs"])]],
           kernel=_while, grad=_while_grad_rule, stateful=True, inputs=("*inputs",),
           attrs={**_function_attrs("cond", "body"), "output_shapes": attr("list(shape)"),
                  "back_prop": attr("bool", True), "parallel_iterations": attr("int", 10)})
WhileGrad = op("WhileGrad", shape=_while_grad_shape,
               dtype=lambda args, attrs: [a.dtype for a in args[:len(attrs["vjp_outputs"])]],
               kernel=_while_grad, grad=NOT_DIFFERENTIABLE, stateful=True, inputs=("*inputs",),
               attrs={**_function_attrs("cond", "body", "vjp"), "output_shapes": attr("list(shape)")})


# -- building -----------------------------------------------------------------------------------------------
def _function(args: list[Tensor], outputs: list[Tensor], name: str) -> dict:
    return {f"{name}_args": [a.op.name for a in args], f"{name}_outputs": [t.name for t in outputs]}


def make_if(pred: Tensor, inputs: list[Tensor], then_fn: tuple, else_fn: tuple, shapes, name="If") -> list[Tensor]:
    """An If node over two traced functions, each (scope, argument tensors, result tensors)."""
    (t_scope, t_args, t_out), (e_scope, e_args, e_out) = then_fn, else_fn
    attrs = {**_function(t_args, t_out, "then"), **_function(e_args, e_out, "else"),
             "Tout": [t.dtype for t in t_out], "output_shapes": [ShapeAttr(s) for s in shapes]}
    node = apply_op("If", [pred, *inputs], attrs, name)
    _TRACED[node] = ((t_scope, t_args, t_out), (e_scope, e_args, e_out))
    return list(node.outputs)


def make_while(inputs: list[Tensor], cond_fn: tuple, body_fn: tuple, shapes, back_prop: bool,
               parallel_iterations: int, name="While") -> list[Tensor]:
    """A While node: `inputs` are the loop variables then the invariant captures."""
    (c_scope, c_args, c_out), (b_scope, b_args, b_out) = cond_fn, body_fn
    attrs = {**_function(c_args, c_out, "cond"), **_function(b_args, b_out, "body"),
             "output_shapes": [ShapeAttr(s) for s in shapes], "back_prop": bool(back_prop),
             "parallel_iterations": int(parallel_iterations)}
    node = apply_op("While", inputs, attrs, name)
    _TRACED[node] = ((c_scope, c_args, c_out), (b_scope, b_args, b_out), back_prop)
    return list(node.outputs)
