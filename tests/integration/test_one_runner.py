"""In-process and remote runs go through one engine and one RunMetadata builder: for the same graph
they report the same nodes, devices, soft placements and plan listing, and give the same results."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf

pytestmark = pytest.mark.timeout(120)


def _graph():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [4], name="x")
        v = tf.Variable(tf.ones([4]), name="v")
        with tf.device("/device:GPU:0"):
            y = tf.exp(x * v, name="on_gpu")
        step = v.assign_add(y * 0.0 + 1.0, name="step")
        total = tf.reduce_sum(step, name="total")
    return graph, x, v, total


def _run(target):
    graph, x, v, total = _graph()
    options, metadata = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE), tf.RunMetadata()
    with tf.Session(target, graph=graph) as sess:
        sess.run(v.initializer)
        values = [sess.run(total, {x: np.arange(4, dtype=np.float32)}, options=options, run_metadata=metadata)
                  for _ in range(2)]
    return values, metadata


def test_in_process_and_remote_runs_report_the_same_metadata(embedded):
    local_values, local = _run("")
    remote_values, remote = _run(embedded)
    assert local_values == remote_values == [8.0, 12.0]
    assert sorted(local.executed_nodes) == sorted(remote.executed_nodes)
    assert local.devices == remote.devices and set(local.devices.values()) == {"/cpu:0"}
    assert local.soft_placement == remote.soft_placement and local.soft_placement
    assert local.plan_text == remote.plan_text
    assert [s.node_name for s in local.step_stats.node_stats] == [s.node_name for s in remote.step_stats.node_stats]
    assert [s.device for s in local.step_stats.node_stats] == [s.device for s in remote.step_stats.node_stats]
    assert (local.plan_source, remote.plan_source) == ("memory", "memory")
    assert local.worker.endswith("@in-process") and "@" in remote.worker
