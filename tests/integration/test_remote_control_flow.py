"""Control flow on a real `graphexec serve`: the graph (If/While nodes and their functions) travels as an
ordinary GraphDef, is compiled on the server with sub-plans, and gives the in-process numbers; a
malformed functional node is INVALID_ARGUMENT and the server stays up."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors, ir
from graphexec.framework import apply_op
from tests.unit.golden.control_flow.programs import CASES, PROGRAMS

pytestmark = pytest.mark.timeout(120)


def _training_graph():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 2], name="x")
        w = tf.Variable([[0.5], [-0.25]], name="w")
        rows = tf.map_fn(lambda r: tf.reduce_sum(r * r), x)
        _, y = tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, tf.tanh(tf.matmul(x, w) + y)),
                             [0, tf.zeros([tf.shape(x)[0], 1])], shape_invariants=[tf.TensorShape([]),
                                                                                   tf.TensorShape([None, 1])])
        loss = tf.cond(tf.reduce_mean(rows) > 1.0, lambda: tf.reduce_sum(y * y), lambda: -tf.reduce_sum(y))
        step = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
        init = tf.global_variables_initializer()
    return graph, x, w, loss, step, init


def test_programs_run_remotely_as_in_process(embedded):
    for name, build in PROGRAMS.items():
        results = []
        for target in ("", embedded):
            graph = tf.Graph()
            with graph.as_default():
                feeds, fetches = build(tf)
            with tf.Session(target, graph=graph) as sess:
                results.append([sess.run(fetches, {feeds[k]: v for k, v in case.items()}) for case in CASES[name]])
        local, remote = results
        for want, got in zip(local, remote):
            for key in want:
                np.testing.assert_array_equal(got[key], want[key], err_msg=f"{name} {key}")


def test_training_through_loop_and_cond_remotely_as_in_process(embedded):
    batches = [np.array([[1.0, 2.0], [0.5, -1.0]], np.float32), np.array([[0.1, 0.2]], np.float32)]
    trained = []
    for target in ("", embedded):
        graph, x, w, loss, step, init = _training_graph()
        with tf.Session(target, graph=graph) as sess:
            sess.run(init)
            losses = [sess.run([loss, step], {x: b})[0] for b in batches * 3]
            trained.append((losses, sess.run(w)))
    (local_losses, local_w), (remote_losses, remote_w) = trained
    np.testing.assert_array_equal(remote_losses, local_losses)
    np.testing.assert_array_equal(remote_w, local_w)
    assert not np.array_equal(local_w, [[0.5], [-0.25]])  # training moved the weights


def _malformed(problem):
    graph = tf.Graph()
    with graph.as_default():
        pred, x = tf.placeholder(tf.bool, [], name="p"), tf.placeholder(tf.float32, [], name="x")
        arg = apply_op("FuncArg", (), {"dtype": tf.float32, "shape": ir.ShapeAttr([])}, "arg").outputs[0]
        doubled = arg * 2.0
        then_args, then_outputs = {"self": (["arg"], ["If:0"]), "not_funcarg": (["x"], [doubled.name]),
                                   "stray": ([], [doubled.name])}[problem]
        attrs = {"then_args": then_args, "then_outputs": then_outputs, "else_args": ["arg"],
                 "else_outputs": [doubled.name], "Tout": [tf.float32], "output_shapes": [ir.ShapeAttr([])]}
        inputs = (pred,) if problem == "stray" else (pred, x)
        if problem == "stray":
            attrs["else_args"] = []
        out = apply_op("If", inputs, attrs, "If").outputs[0]
    return graph, pred, x, out


@pytest.mark.parametrize("problem", ["self", "not_funcarg", "stray"])
def test_malformed_control_flow_is_invalid_argument(embedded, problem):
    graph, pred, x, out = _malformed(problem)
    with tf.Session(embedded, graph=graph) as sess:
        with pytest.raises(errors.InvalidArgumentError, match="node 'If' \\(If"):
            sess.run(out, {pred: True, x: 1.0})
    fine = tf.Graph()
    with fine.as_default():
        y = tf.cond(tf.constant(True), lambda: tf.constant(2.0), lambda: tf.constant(3.0))
    with tf.Session(embedded, graph=fine) as sess:  # the server is still up and serving
        assert sess.run(y) == 2.0


def test_endless_loop_stops_at_the_deadline_remotely(embedded):
    graph = tf.Graph()
    with graph.as_default():
        forever = tf.while_loop(lambda v: v > 0, lambda v: v + 1, [tf.constant(1.0)])
    with tf.Session(embedded, graph=graph) as sess:
        with pytest.raises(errors.DeadlineExceededError):
            sess.run(forever, options=tf.RunOptions(timeout_in_ms=300))
        assert sess.run(graph.get_tensor_by_name("Const:0")) == 1.0


def test_training_on_a_redis_backed_worker(redis_server, serve, worker, wait_for_workers):
    """The plan, its If/While sub-plans included, goes through the Redis plan cache to a `graphexec worker`,
    and variables written inside the loop's gradient step are committed there."""
    target = serve("--redis", redis_server.url)
    worker(redis_server.url)
    wait_for_workers(target, 1)
    batches = [np.array([[1.0, 2.0], [0.5, -1.0]], np.float32), np.array([[0.1, 0.2]], np.float32)]
    trained = []
    for where in ("", target):
        graph, x, w, loss, step, init = _training_graph()
        with tf.Session(where, graph=graph) as sess:
            sess.run(init)
            metadata = tf.RunMetadata()
            losses = [sess.run([loss, step], {x: b}, run_metadata=metadata)[0] for b in batches * 2]
            trained.append((losses, sess.run(w), metadata.worker))
    (local_losses, local_w, _), (remote_losses, remote_w, remote_worker) = trained
    assert "@127.0.0.1:" in remote_worker  # ran on the worker process, not in the server
    np.testing.assert_array_equal(remote_losses, local_losses)
    np.testing.assert_array_equal(remote_w, local_w)
