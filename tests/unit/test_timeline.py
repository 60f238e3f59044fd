"""graphexec.client.timeline: a RunMetadata's step stats as a Chrome/Perfetto trace (TF1's Timeline)."""
from __future__ import annotations

import json

import graphexec as tf
from graphexec.client import timeline
from graphexec.config import StepStats
from graphexec.runtime.executor import NodeStats


def test_trace_has_a_process_per_worker_and_device_and_an_event_per_step():
    stats = StepStats([NodeStats("a", "MatMul", 1000.0, 5.0, ("a",), "/cpu:0", "w1@host:1"),
                       NodeStats("b", "Fused", 1010.0, 2.5, ("b/mul", "b"), "/gpu:0", "w1@host:1"),
                       NodeStats("c", "Add", 1020.0, 1.0, ("c",), "/cpu:0", "w2@host:2")])
    trace = json.loads(timeline.Timeline(stats).generate_chrome_trace_format())
    processes = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M"}
    assert processes == {0: "/cpu:0 Compute (w1@host:1)", 1: "/gpu:0 Compute (w1@host:1)",
                         2: "/cpu:0 Compute (w2@host:2)"}
    steps = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert [(e["name"], e["pid"], e["tid"], e["ts"], e["dur"]) for e in steps] == [
        ("MatMul", 0, 0, 0.0, 5.0), ("Fused", 1, 0, 10.0, 2.5), ("Add", 2, 0, 20.0, 1.0)]
    assert steps[1]["args"] == {"name": "b", "op": "Fused", "covers": ["b/mul", "b"], "worker": "w1@host:1",
                                "device": "/gpu:0"}


def test_a_traced_run_gives_a_trace_covering_its_nodes():
    x = tf.placeholder(tf.float32, [None, 2], name="x")
    y = tf.nn.relu(tf.matmul(x, tf.ones([2, 2])) * 2.0, name="y")
    metadata = tf.RunMetadata()
    with tf.Session() as sess:
        sess.run(y, {x: [[1.0, -1.0]]}, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                 run_metadata=metadata)
    events = [e for e in timeline.Timeline(metadata.step_stats).trace_events() if e["ph"] == "X"]
    assert {name for e in events for name in e["args"]["covers"]} >= {"MatMul", "y"}
    assert all(e["args"]["worker"] == metadata.worker for e in events)
    assert timeline.Timeline(tf.RunMetadata().step_stats).trace_events() == []  # an untraced run: empty
