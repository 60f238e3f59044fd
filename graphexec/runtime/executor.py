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

from graphexec import errors
from graphexec.compiler.plan import Plan, Step
from graphexec.ops import registry


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


def _kernel_attrs(attrs) -> dict:
    return {k: v for k, v in attrs.items() if not k.startswith("_")}


def _wants_node(kernel) -> bool:
    try:
        return "node" in inspect.signature(kernel).parameters
    except (TypeError, ValueError):
        return False


def _bind(step: Step):
    if step.op == "Fused":
        return _bind_fused(step)
    definition = registry.get(step.op)
    attrs = _kernel_attrs(step.attrs)
    if _wants_node(definition.kernel):
        attrs["node"] = step.node
    return functools.partial(definition.kernel, **attrs) if attrs else definition.kernel


def _bind_fused(step: Step):
    """One callable running the chain; results whose only use is the next op are overwritten in place."""
    program = step.attrs["program"]
    calls = []
    for position, (op_name, operands, attrs, out_type) in enumerate(program):
        definition = registry.get(op_name)
        kernel = functools.partial(definition.kernel, **_kernel_attrs(attrs)) if attrs else definition.kernel
        in_place = None
        if definition.ufunc and out_type.shape is not None and None not in out_type.shape:
            for operand in operands:
                if operand < 0 and program[-operand - 1][3] == out_type:
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


class LoadedPlan:
    """A plan bound to kernels for one backend (numpy or CuPy)."""

    def __init__(self, plan: Plan, xp=np):
        self.plan = plan
        self.xp = xp
        self.template = [None] * plan.num_slots
        for slot, value in plan.constants.items():
            self.template[slot] = value if xp is np else xp.asarray(value)
        self.feed_slots = tuple(e.slot for e in plan.feeds)
        self.fetch_slots = tuple(e.slot for e in plan.fetches)
        self.steps = tuple((_bind(s), s.inputs, s.outputs, s.free, len(s.outputs) == 1, s) for s in plan.steps)

    def run(self, ctx, feed_values, stats: list | None = None) -> list:
        slots = self.template.copy()
        for slot, value in zip(self.feed_slots, feed_values):
            slots[slot] = value
        interruptible = ctx.deadline is not None or ctx.cancelled is not False
        with np.errstate(all="ignore"):
            for fn, ins, outs, free, single, step in self.steps:
                if interruptible:
                    ctx.check_interrupt()
                args = [slots[i] for i in ins]
                if stats is not None:
                    start = time.perf_counter()
                try:
                    result = fn(ctx, *args)
                except errors.OpError as exc:
                    raise _with_node(type(exc), step, str(exc)) from None
                except MemoryError:
                    raise _with_node(errors.ResourceExhaustedError, step, "out of memory") from None
                except Exception as exc:  # a kernel failure: re-raised against the user's node
                    raise _with_node(errors.InvalidArgumentError, step, f"{type(exc).__name__}: {exc}") from None
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
        return [slots[i] for i in self.fetch_slots]


def _with_node(error_class, step: Step, message: str) -> errors.OpError:
    where = f" (defined at {step.source})" if step.source else ""
    covered = f", fused from {', '.join(step.covers)}" if len(step.covers) > 1 else ""
    return error_class(None, step.node, f"{message}\n\t [[node {step.node} ({step.op}{covered}){where}]]")
