"""Runs a Plan: binds each step to its kernel once (`LoadedPlan`), then executes steps over slots.

A kernel failure is re-raised as the matching tf.errors class naming the node, its op and the user's
source line. Between steps a deadline or cancellation stops the run; the slots are dropped with it.
"""
from __future__ import annotations

import functools
import inspect
import time
from dataclasses import dataclass

import numpy as np

from graphexec import errors, ir
from graphexec.compiler.plan import Plan, Step
from graphexec.ops import registry
from graphexec.ops.state_ops import VARIABLE_OPS, written_variables
from graphexec.runtime import elementwise_parts
from graphexec.runtime.context import on_device


@dataclass
class NodeStats:
    """Timing of one plan step (TF's NodeExecStats, simplified)."""

    node_name: str
    op: str
    start_micros: float
    duration_micros: float
    covers: tuple[str, ...]
    device: str = "/cpu:0"
    worker: str = ""


def _wants_node(kernel) -> bool:
    try:
        return "node" in inspect.signature(kernel).parameters
    except (TypeError, ValueError):
        return False


class _Function:
    """An If/While function's sub-plan, bound on first use for each array module (a step pinned to the
    host in a GPU plan runs its functions with numpy)."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.loaded: dict = {}

    def run(self, ctx, args: list, stats: list | None = None) -> list:
        loaded = self.loaded.get(ctx.xp)
        if loaded is None:
            loaded = self.loaded[ctx.xp] = LoadedPlan(self.plan, ctx.xp)
        return loaded.run(ctx, args, stats)


def _bind(step: Step):
    definition = registry.get(step.op)
    if definition.is_fused:
        return _bind_fused(step.attrs["body"])
    attrs = registry.kernel_attrs(definition, step.attrs)  # a node may omit attrs that have defaults
    for key, value in attrs.items():
        if isinstance(value, Plan):  # an If or While function: its kernel runs it
            attrs[key] = _Function(value)
    if _wants_node(definition.kernel):
        attrs["node"] = step.node
    return functools.partial(definition.kernel, **attrs) if attrs else definition.kernel


def _bind_fused(body: ir.Subprogram):
    """One callable running the body; results whose only use is the next op are overwritten in place."""
    calls = []
    types = [node.outputs[0] for node in body.nodes]
    for node, operands in zip(body.nodes, body.operands()):
        definition = registry.get(node.op)
        attrs = registry.kernel_attrs(definition, node.attrs)
        kernel = functools.partial(definition.kernel, **attrs) if attrs else definition.kernel
        out_type = node.outputs[0]
        in_place = None
        if definition.ufunc and out_type.shape is not None and None not in out_type.shape:
            for operand in operands:
                if operand < 0 and types[-operand - 1] == out_type:
                    in_place = -operand - 1
                    break
        calls.append((kernel, operands, definition.ufunc if in_place is not None else None, in_place))

    def run_fused(ctx, *inputs):
        results = []
        for kernel, operands, ufunc, in_place in calls:
            args = [inputs[o] if o >= 0 else results[-o - 1] for o in operands]
            if ufunc is not None and isinstance(results[in_place], ctx.xp.ndarray):
                results.append(getattr(ctx.xp, ufunc)(*args, out=results[in_place]))
            else:
                results.append(kernel(ctx, *args))
        return results[-1]

    return run_fused


def _donors(plan: Plan, feeds_owned: bool) -> dict[int, int]:
    """step index -> operand position whose buffer the step may overwrite with its result.

    A buffer qualifies when this step is its last use, the runtime owns it (an elementwise result, or a
    feed when the caller hands its feeds over), and it has exactly the result's static type. Saves one
    allocation per step: a 64 MiB `x * 2` writes into the received feed instead of a new array.
    """
    occupant: dict[int, tuple] = {e.slot: (e.type, feeds_owned) for e in plan.feeds}
    donors = {}
    for index, step in enumerate(plan.steps):
        definition = registry.REGISTRY.get(step.op)
        out = step.output_types[0] if len(step.output_types) == 1 else None
        if (definition is not None and definition.ufunc and out is not None and out.shape is not None
                and None not in out.shape):
            for position, slot in enumerate(step.inputs):
                kind, owned = occupant.get(slot, (None, False))
                if owned and kind == out and slot in step.free:
                    donors[index] = position
                    break
        produces_fresh = definition is not None and (definition.is_fused or definition.elementwise)
        for slot, kind in zip(step.outputs, step.output_types):
            occupant[slot] = (kind, produces_fresh)
    return donors


def _in_place(kernel, ufunc_name: str, position: int):
    def run(ctx, *args):
        buffer = args[position]
        if isinstance(buffer, ctx.xp.ndarray) and (ctx.xp is not np or buffer.flags.writeable):
            return getattr(ctx.xp, ufunc_name)(*args, out=buffer)
        return kernel(ctx, *args)

    return run


def final_writes(plan: Plan) -> dict[int, tuple[str, ...]]:
    """step index -> the variables whose values the run has once that step is done (no later step writes
    them); empty when an If or While body writes variables (its steps may run any number of times)."""
    last: dict[str, int] = {}
    for index, step in enumerate(plan.steps):
        for value in step.attrs.values():
            if isinstance(value, Plan) and value.step_ops() & (VARIABLE_OPS - {"ReadVariable"}):
                return {}
        for name in written_variables(step.op, step.attrs):
            last[name] = index
    finals: dict[int, tuple[str, ...]] = {}
    for name, index in last.items():
        finals[index] = (*finals.get(index, ()), name)
    return finals


class LoadedPlan:
    """A plan bound to kernels for one backend (numpy or CuPy).

    `feeds_owned=True` says the caller hands its feed arrays over (a server decoding them from the
    wire): steps may then overwrite a feed buffer after its last use. A user's arrays are never owned.
    With `announce_writes`, a run whose context has `on_final` set calls it with the names of the
    variables each step wrote for the last time in the run, once that step is done (`final_writes`), so
    a worker can send their new values to the store while the rest of the run goes on.
    """

    def __init__(self, plan: Plan, xp=np, feeds_owned: bool = False, announce_writes: bool = False):
        self.plan = plan
        self.xp = xp
        self.template = [None] * plan.num_slots
        for slot, value in plan.constants.items():
            self.template[slot] = on_device(xp, value)
        self.feed_slots = tuple(e.slot for e in plan.feeds)
        self.fetch_slots = tuple(e.slot for e in plan.fetches)
        donors = _donors(plan, feeds_owned)
        finals = final_writes(plan) if announce_writes else {}
        bound = []
        for index, s in enumerate(plan.steps):
            fn = plain = _bind(s)
            definition = registry.get(s.op)
            if index in donors:
                fn = _in_place(fn, definition.ufunc, donors[index])
            if (xp is np and (definition.elementwise or definition.is_fused) and len(s.output_types) == 1
                    and elementwise_parts.may_split(s.output_types[0])):
                fn = elementwise_parts.split(fn, plain, s.output_types[0], definition.ufunc, donors.get(index))
            bound.append((fn, s.inputs, s.outputs, s.free, len(s.outputs) == 1, s, finals.get(index)))
        self.steps = tuple(bound)

    def run(self, ctx, feed_values, stats: list | None = None) -> list:
        slots = self.template.copy()
        for slot, value in zip(self.feed_slots, feed_values):
            slots[slot] = value
        ctx.stats = stats
        interruptible = ctx.deadline is not None or ctx.cancelled is not False
        on_final = ctx.on_final
        with np.errstate(all="ignore"):
            for fn, ins, outs, free, single, step, finals in self.steps:
                if interruptible:
                    ctx.check_interrupt()
                args = [slots[i] for i in ins]
                if stats is not None:
                    start = time.perf_counter()
                try:
                    result = fn(ctx, *args)
                except errors.OpError as exc:
                    raise _with_node(type(exc), step, str(exc)) from None  # the kernel's own words, as TF
                except MemoryError:
                    raise _with_node(errors.ResourceExhaustedError, step, "out of memory", args) from None
                except Exception as exc:  # a kernel failure: re-raised against the user's node
                    raise _with_node(errors.InvalidArgumentError, step, f"{type(exc).__name__}: {exc}", args) from None
                if stats is not None:
                    end = time.perf_counter()
                    stats.append(NodeStats(step.node, step.op, start * 1e6, (end - start) * 1e6, step.covers,
                                           ctx.device))
                for slot in free:  # before writing outputs: a freed slot may be reused by this step's output
                    slots[slot] = None
                if single:
                    slots[outs[0]] = result
                else:
                    for slot, value in zip(outs, result):
                        slots[slot] = value
                if finals is not None and on_final is not None:
                    on_final(finals)
        return [slots[i] for i in self.fetch_slots]


def _with_node(error_class, step: Step, message: str, args=None) -> errors.OpError:
    """The failure of a step, naming its node and op, the user's line and, for a kernel that failed
    unexpectedly (`args` given), the shapes it was given."""
    where = f" (defined at {step.source})" if step.source else ""
    covered = f", fused from {', '.join(step.covers)}" if len(step.covers) > 1 else ""
    if args is not None:
        inputs = ", ".join(_describe(a) for a in args)
        message = f"{step.op} '{step.node}' failed on inputs {inputs or '(none)'}: {message}"
    return error_class(None, step.node, f"{message}\n\t [[node {step.node} ({step.op}{covered}){where}]]")


def _describe(value) -> str:
    """`float32[2,3]` for an array, the type name otherwise."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None or dtype is None:
        return type(value).__name__
    return f"{np.dtype(dtype).name}[{','.join(str(d) for d in shape)}]"
