"""Per-run options and metadata (tf.RunOptions, tf.RunMetadata) and a permissive tf.ConfigProto."""
from __future__ import annotations

from dataclasses import dataclass, field


class RunOptions:
    NO_TRACE, SOFTWARE_TRACE, HARDWARE_TRACE, FULL_TRACE = 0, 1, 2, 3

    def __init__(self, trace_level=0, timeout_in_ms=0, **_ignored):
        self.trace_level = trace_level
        self.timeout_in_ms = timeout_in_ms


@dataclass
class StepStats:
    """Per-step timings; `node_stats` lists one entry per executed plan step."""

    node_stats: list = field(default_factory=list)


class RunMetadata:
    """Filled by Session.run when passed: timings, what ran, where, and whether the plan was cached."""

    def __init__(self):
        self.step_stats = StepStats()
        self.plan_cache_hit = False
        self.compile_ms = 0.0
        self.executed_nodes: list[str] = []
        self.devices: dict[str, str] = {}
        self.workers: dict[str, str] = {}
        self.soft_placement: list[str] = []
        self.plan_text = ""
        self.plan_source = ""  # remote runs: "compiled", "memory" or "store" (another replica compiled it)
        self.deduplicated = False  # remote runs: a retried request_id answered from the stored result
        self.worker = ""  # remote runs: the worker that ran the plan

    def record(self, stats, plan_cache_hit, compile_ms, plan=None, device="/cpu:0", worker="", soft_placement=()):
        self.step_stats.node_stats = list(stats)
        self.plan_cache_hit = plan_cache_hit
        self.compile_ms = compile_ms
        if plan is not None:
            self.executed_nodes = plan.executed_nodes()
            self.plan_text = str(plan)
            self.devices = {name: s.device or device for s in plan.steps for name in s.covers}
            self.workers = {name: worker for name in self.executed_nodes}
        self.soft_placement = list(soft_placement)


class ConfigProto:
    """Accepted for compatibility; graphexec ignores thread and placement tuning knobs it does not need."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)
        self.allow_soft_placement = kwargs.get("allow_soft_placement", True)


class GPUOptions:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)
