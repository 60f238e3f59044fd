"""The in-process Session runs on the workers' engine (WorkerCore over a MemoryStore of its own) and keeps
in-process semantics: user feeds are never written, fetched arrays are the caller's, variables are the
session's own, placement is decided once per plan, and RunMetadata is the same one a server reports."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors, ir
from graphexec.compiler.pipeline import compile_program
from graphexec.runtime import placement
from graphexec.runtime.metadata import COMPILED, MEMORY
from graphexec.runtime.worker import WorkerCore
from graphexec.session import InProcessRunner


def test_a_session_runs_on_the_worker_engine_over_its_own_store():
    v = tf.Variable(1.0, name="v")
    bump = v.assign_add(1.0)
    with tf.Session() as first, tf.Session() as second:
        first.run(v.initializer)
        second.run(v.initializer)
        first.run(bump)
        assert first.run(v) == 2.0 and second.run(v) == 1.0  # each session's variables are its own
        assert isinstance(first._runner.core, WorkerCore)
        assert first._runner.variables()["v"] == 2.0


def test_user_feeds_are_never_written_and_fetches_are_the_callers():
    x = tf.placeholder(tf.float32, [4], name="x")
    v = tf.Variable(np.arange(4, dtype=np.float32), name="v")
    y = (x * 2.0 + 1.0) * 3.0  # elementwise steps that could reuse an owned feed buffer
    feed = np.ones(4, np.float32)
    with tf.Session() as sess:
        sess.run(v.initializer)
        out = sess.run(y, {x: feed})
        np.testing.assert_array_equal(feed, np.ones(4, np.float32))
        np.testing.assert_array_equal(out, np.full(4, 9.0, np.float32))
        value = sess.run(v)
        value[:] = -1  # the caller's copy: the variable is untouched
        np.testing.assert_array_equal(sess.run(v), np.arange(4, dtype=np.float32))
        fed_back, passed_through = sess.run([x, tf.identity(x)], {x: feed})
        assert not np.shares_memory(fed_back, feed) and not np.shares_memory(passed_through, feed)


def test_load_variable_is_seen_by_the_next_run():
    v = tf.Variable(tf.zeros([2]), name="v")
    with tf.Session() as sess:
        sess.run(v.initializer)
        v.load([3.0, 4.0], sess)
        np.testing.assert_array_equal(sess.run(v + 1.0), [4.0, 5.0])


def test_concurrent_updates_in_one_session_are_serialized_not_aborted():
    counter = tf.Variable(0.0, name="counter")
    bump = counter.assign_add(1.0)
    with tf.Session() as sess:
        sess.run(counter.initializer)

        def work():
            for _ in range(50):
                sess.run(bump)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sess.run(counter) == 200.0


def test_kernel_errors_name_the_node_as_before():
    x = tf.placeholder(tf.float32, [None], name="x")
    y = tf.reshape(x, [2, 2], name="square")
    with tf.Session() as sess:
        with pytest.raises(errors.InvalidArgumentError, match=r"\[\[node square"):
            sess.run(y, {x: np.ones(3, np.float32)})


def test_run_metadata_reports_where_and_how_the_plan_ran():
    x = tf.placeholder(tf.float32, [3], name="x")
    with tf.device("/device:GPU:0"):
        y = tf.exp(x, name="on_gpu")
    z = tf.add(y, 1.0, name="after")
    full = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)
    with tf.Session() as sess:
        first, second = tf.RunMetadata(), tf.RunMetadata()
        sess.run(z, {x: [0, 1, 2]}, options=full, run_metadata=first)
        sess.run(z, {x: [0, 1, 2]}, run_metadata=second)
    assert (first.plan_source, first.plan_cache_hit) == (COMPILED, False)
    assert (second.plan_source, second.plan_cache_hit, second.compile_ms) == (MEMORY, True, 0.0)
    assert first.plan_text and not second.plan_text  # the listing comes with a full trace only
    assert first.step_stats.node_stats and not second.step_stats.node_stats
    assert set(first.devices.values()) == {"/cpu:0"} and {"on_gpu", "after"} <= set(first.executed_nodes)
    assert first.worker.endswith("@in-process") and set(first.workers.values()) == {first.worker}
    assert any(line.startswith("on_gpu: requested /device:GPU:0, placed on /cpu:0") for line in first.soft_placement)


def test_without_soft_placement_a_gpu_node_is_unavailable_in_process_too():
    x = tf.placeholder(tf.float32, [3], name="x")
    with tf.device("/gpu:0"):
        y = tf.exp(x, name="needs_gpu")
    with tf.Session(config=tf.ConfigProto(allow_soft_placement=False)) as sess:
        with pytest.raises(errors.UnavailableError, match="needs_gpu"):
            sess.run(y, {x: [0, 1, 2]})


def test_a_plan_is_placed_once_per_signature():
    x = tf.placeholder(tf.float32, [3], name="x")
    y = x * 2.0
    graph = tf.get_default_graph()
    runner = InProcessRunner()
    first, source, _ = runner.prepare(graph, [x.name], [y.name], [])
    again, again_source, _ = runner.prepare(graph, [x.name], [y.name], [])
    assert (source, again_source) == (COMPILED, MEMORY)
    assert again is first and again.placement is first.placement
    np.testing.assert_array_equal(runner.run(first, [np.ones(3, np.float32)]).fetches[0], [2.0, 2.0, 2.0])


def test_placement_names_the_host_steps_of_a_gpu_run():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [3], name="x")
        with tf.device("/gpu:0"):
            y = tf.exp(x, name="gpu_exp")
        with tf.device("/cpu:0"):
            z = tf.sqrt(y, name="cpu_sqrt")
    plan = compile_program(ir.Program(graph.nodes(), (x.name,), (z.name,), (), None), graph.digest())
    on_gpu = placement.place(plan, frozenset({placement.CPU, placement.GPU}))
    on_cpu = placement.place(plan, frozenset({placement.CPU}))
    hosts = [plan.steps[i].node for i in on_gpu.host_steps]
    assert "cpu_sqrt" in hosts and "gpu_exp" not in hosts
    assert on_cpu.host_steps == ()
    decision = on_cpu.soft[0]
    assert (decision.node, decision.assigned) == ("gpu_exp", "/cpu:0") and decision.startswith("gpu_exp: requested")

