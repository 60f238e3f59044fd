"""A run's step timings as a Chrome / Perfetto trace (TF1's `tensorflow.python.client.timeline`).

    run_metadata = tf.RunMetadata()
    sess.run(y, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE), run_metadata=run_metadata)
    trace = timeline.Timeline(run_metadata.step_stats).generate_chrome_trace_format()

Open the JSON in chrome://tracing or ui.perfetto.dev: one process row per worker and device, one complete
("X") event per plan step, its args naming the node, its op, the nodes a fused step covers, the worker
and the device.
"""
from __future__ import annotations

import json

from graphexec.config import StepStats


class Timeline:
    """TF1's Timeline over graphexec's StepStats (`run_metadata.step_stats`)."""

    def __init__(self, step_stats: StepStats, graph=None):
        self._stats = list(step_stats.node_stats)

    def trace_events(self) -> list[dict]:
        """The trace's events: a process_name metadata event per (worker, device), then one per step."""
        events, pids = [], {}
        origin = min((s.start_micros for s in self._stats), default=0.0)
        for stats in self._stats:
            where = (stats.worker, stats.device)
            if where not in pids:
                pids[where] = len(pids)
                label = f"{stats.device} Compute" + (f" ({stats.worker})" if stats.worker else "")
                events.append({"name": "process_name", "ph": "M", "pid": pids[where], "tid": 0,
                               "args": {"name": label}})
            events.append({"name": stats.op, "cat": "Op", "ph": "X", "pid": pids[where], "tid": 0,
                           "ts": round(stats.start_micros - origin, 3), "dur": round(stats.duration_micros, 3),
                           "args": {"name": stats.node_name, "op": stats.op, "covers": list(stats.covers),
                                    "worker": stats.worker, "device": stats.device}})
        return events

    def generate_chrome_trace_format(self, show_dataflow: bool = True, show_memory: bool = False) -> str:
        """The trace as JSON text ({"traceEvents": [...]}); dataflow arrows and memory are not drawn."""
        return json.dumps({"traceEvents": self.trace_events(), "displayTimeUnit": "ms"}, indent=None)
