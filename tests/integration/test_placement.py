"""Placement on real CPU workers: tf.device honoured, soft placement reported (never silent),
variables colocated with their updates, and UNAVAILABLE with the reason when no worker fits."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors, ir
from graphexec.compiler.pipeline import compile_program
from graphexec.runtime import placement

pytestmark = pytest.mark.timeout(120)


def _gpu_graph():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [3], name="x")
        with tf.device("/device:GPU:0"):
            y = tf.exp(x, name="on_gpu")
        with tf.device("/cpu:0"):
            z = tf.add(y, 1.0, name="on_cpu")
    return graph, x, z


def test_gpu_nodes_fall_back_to_cpu_and_the_metadata_says_so(embedded):
    graph, x, z = _gpu_graph()
    with tf.Session(embedded, graph=graph) as sess:
        metadata = tf.RunMetadata()
        result = sess.run(z, {x: [0, 1, 2]}, run_metadata=metadata)
    np.testing.assert_allclose(result, np.exp([0, 1, 2]) + 1, rtol=1e-6)
    assert any(line.startswith("on_gpu: requested /device:GPU:0, placed on /cpu:0") and "no live worker has a GPU"
               in line for line in metadata.soft_placement), metadata.soft_placement
    assert set(metadata.devices.values()) == {"/cpu:0"}


def test_without_soft_placement_a_gpu_node_is_unavailable_with_the_reason(embedded):
    graph, x, z = _gpu_graph()
    with tf.Session(embedded, graph=graph, config=tf.ConfigProto(allow_soft_placement=False)) as sess:
        with pytest.raises(errors.UnavailableError, match="no live worker has a GPU.*on_gpu"):
            sess.run(z, {x: [0, 1, 2]})


def test_cpu_workers_declare_their_devices_and_runs_need_a_live_one(redis_server, serve, worker, wait_for_workers):
    target = serve("--redis", redis_server.url)
    graph, x, z = _gpu_graph()
    with tf.Session(target, graph=graph) as sess:
        with pytest.raises(errors.UnavailableError, match="no live worker"):
            sess.run(z, {x: [0, 1, 2]})
        worker(redis_server.url)
        wait_for_workers(target, 1)
        assert [(d.name, d.device_type) for d in sess.list_devices()] == [("/cpu:0", "CPU")]
        metadata = tf.RunMetadata()
        sess.run(z, {x: [0, 1, 2]}, run_metadata=metadata)
        assert metadata.soft_placement and "@127.0.0.1:" in metadata.worker


def _plan(build):
    graph = tf.Graph()
    with graph.as_default():
        fetch = build()
    program = ir.Program(graph.nodes(), (), (), (fetch.name,), None)
    return compile_program(program, graph.digest())


def test_variables_are_colocated_with_the_ops_that_update_them():
    def build():
        with tf.device("/cpu:0"):
            v = tf.Variable(tf.zeros([2]), name="v")  # its reads ask for the CPU
        with tf.device("/device:GPU:0"):
            return v.assign_add(tf.ones([2]), name="update").op  # ... its update for the GPU

    plan = _plan(build)
    placed = placement.place(plan, frozenset({placement.CPU, placement.GPU}))
    var_devices = {device for step, device in zip(plan.steps, placed.step_devices) if step.attrs.get("var") == "v"}
    assert placed.device_type == placement.GPU and var_devices == {"/device:GPU:0"}


def test_cpu_pinned_steps_stay_on_the_cpu_in_a_gpu_run():
    def build():
        x = tf.constant(np.arange(3, dtype=np.float32))
        v = tf.Variable(tf.zeros([3]), name="w")
        with tf.device("/gpu:0"):
            y = tf.exp(v)
        with tf.device("/device:CPU:0"):
            return v.assign(y + x, name="store").op

    plan = _plan(build)
    placed = placement.place(plan, frozenset({placement.CPU, placement.GPU}))
    by_node = {step.node: device for step, device in zip(plan.steps, placed.step_devices)}
    assert placed.mixed and by_node["store"] == "/cpu:0"
    assert placement.place(plan, frozenset({placement.CPU})).step_devices == ("/cpu:0",) * len(plan.steps)
