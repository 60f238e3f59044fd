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
    """Filled by Session.run when passed: timings, what ran, where, and whether the plan was cached.
    graphexec.runtime.metadata.describe_run is the one function that fills it."""

    def __init__(self):
        self.step_stats = StepStats()
        self.plan_cache_hit = False
        self.compile_ms = 0.0
        self.executed_nodes: list[str] = []
        self.devices: dict[str, str] = {}
        self.workers: dict[str, str] = {}
        self.soft_placement: list[str] = []  # "node: requested X, placed on Y (reason)"
        self.plan_text = ""
        self.plan_source = ""  # "compiled", "memory" or "store" (remote: another replica compiled it)
        self.deduplicated = False  # remote runs: a retried request_id answered from the stored result
        self.worker = ""  # the worker that ran the plan


class ConfigProto:
    """Accepted for compatibility. An in-process session takes `intra_op_parallelism_threads` as the
    threads one large kernel is split over (process-wide; graphexec/runtime/intra_op.py) and
    `allow_soft_placement`; graphexec needs no other knob."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)
        self.allow_soft_placement = kwargs.get("allow_soft_placement", True)


class GPUOptions:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)
