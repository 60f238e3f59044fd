"""The one place a run's RunMetadata is built, from the plan, its placement and the worker's result.

In-process sessions call it directly; a server calls it and sends the result over the wire, where
the client copies it field by field into the caller's RunMetadata.
"""
from __future__ import annotations

from graphexec.compiler.plan import Plan
from graphexec.config import RunMetadata
from graphexec.runtime.placement import Placement
from graphexec.runtime.worker import PlanResult

# Where a run's plan came from (RunMetadata.plan_source): compiled for this run, found in this
# process's plan cache, or found in the store shared by the replicas (another replica compiled it).
COMPILED, MEMORY, STORE = "compiled", "memory", "store"


def describe_run(plan: Plan, placed: Placement, result: PlanResult, plan_source: str, compile_ms: float,
                 full_trace: bool, out: RunMetadata | None = None) -> RunMetadata:
    """Fill `out` (a new RunMetadata when None): what ran, where, on which worker, how long each step
    took (when traced), and how the plan was obtained. The plan listing comes with a full trace only."""
    out = out if out is not None else RunMetadata()
    device_of = {}
    for step, device in zip(plan.steps, placed.step_devices):
        for name in step.covers:
            device_of[name] = device
    for stats in result.stats:
        stats.device = device_of.get(stats.node_name, stats.device)
    out.step_stats.node_stats = list(result.stats)
    out.plan_cache_hit = plan_source != COMPILED
    out.plan_source = plan_source
    out.compile_ms = compile_ms
    out.executed_nodes = plan.executed_nodes()
    out.devices = device_of
    out.workers = dict.fromkeys(device_of, result.worker)
    out.soft_placement = list(placed.soft)
    out.plan_text = str(plan) if full_trace else ""
    out.deduplicated = result.deduplicated
    out.worker = result.worker
    return out
