"""tf.cond, tf.case, tf.while_loop, tf.map_fn, tf.scan, tf.foldl/foldr: values against numpy, gradients
against finite differences, TF1's errors, and proof that an untaken branch never runs."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors, ir
from graphexec.compiler.pipeline import compile_program
from graphexec.framework import apply_op
from graphexec.rpc import convert
from graphexec.runtime.context import ExecContext
from graphexec.runtime.executor import LoadedPlan
from tests.unit.opcheck import check_grad, check_op


def _run(fetches, feed=None):
    with tf.Session() as sess:
        return sess.run(fetches, feed)


# -- cond -----------------------------------------------------------------------------------------------------
def _piecewise(x, y):
    return tf.cond(tf.reduce_sum(x) > 0, lambda: x * y + tf.sin(x), lambda: x * x - y)


def test_cond_takes_each_branch():
    for x in (np.array([1.5, -0.5]), np.array([-1.5, 0.25])):
        y = np.array([0.5, 2.0])
        want = x * y + np.sin(x) if x.sum() > 0 else x * x - y
        check_op(_piecewise, lambda a, b, w=want: w, [x, y])


def test_cond_gradients_match_finite_differences():
    check_grad(_piecewise, [np.array([1.5, -0.5]), np.array([0.5, 2.0])])
    check_grad(_piecewise, [np.array([-1.5, 0.25]), np.array([0.5, 2.0])])


def test_cond_returns_nested_structures_and_unpacks_singletons():
    Pair = collections.namedtuple("Pair", "a b")
    p = tf.placeholder(tf.bool, [])
    x = tf.constant(3.0)
    out = tf.cond(p, lambda: {"k": Pair(x + 1, [x * 2])}, lambda: {"k": Pair(x - 1, [x * 3])})
    assert isinstance(out["k"], Pair) and isinstance(out["k"].b, list)
    single = tf.cond(p, lambda: [x], lambda: [x * 0])
    assert isinstance(single, tf.Tensor)
    strict = tf.cond(p, lambda: [x], lambda: [x * 0], strict=True)
    assert isinstance(strict, list)
    with tf.Session() as sess:
        assert sess.run(out, {p: True}) == {"k": Pair(4.0, [6.0])}
        assert sess.run(out, {p: False}) == {"k": Pair(2.0, [9.0])}
        assert sess.run(single, {p: True}) == 3.0


def test_cond_errors_match_tf1():
    x = tf.constant(1.0)
    with pytest.raises(TypeError, match="must not be a Python bool"):
        tf.cond(True, lambda: x, lambda: x)
    with pytest.raises(ValueError, match="same nested structure"):
        tf.cond(tf.constant(True), lambda: (x, x), lambda: x)
    with pytest.raises(ValueError, match="same type"):
        tf.cond(tf.constant(True), lambda: x, lambda: tf.constant(1))


def test_untaken_branch_never_runs():
    """An assign in the branch not taken leaves the variable alone, and the trace lists none of its ops."""
    v = tf.Variable(0.0, name="v")
    p = tf.placeholder(tf.bool, [], name="p")
    out = tf.cond(p, lambda: tf.identity(v.assign_add(1.0), name="taken_then"),
                  lambda: tf.identity(v.assign_add(100.0), name="taken_else"))
    options, metadata = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE), tf.RunMetadata()
    with tf.Session() as sess:
        sess.run(v.initializer)
        assert sess.run(out, {p: True}, options=options, run_metadata=metadata) == 1.0
        executed = {name for s in metadata.step_stats.node_stats for name in s.covers}
        assert "cond/then/AssignAdd" in executed  # the branch's steps are traced inside the If step
        assert not any(n.startswith("cond/else") for n in executed), executed
        assert sess.run(v) == 1.0
        assert sess.run(out, {p: False}) == 101.0
        assert sess.run(v) == 101.0


def test_cond_reads_captured_variables_and_optimizes_through_them():
    w = tf.Variable([1.0, -2.0], name="w")
    x = tf.placeholder(tf.float32, [2])
    loss = tf.cond(tf.reduce_sum(x) > 0, lambda: tf.reduce_sum(w * x) ** 2, lambda: tf.reduce_sum(w * w))
    step = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(step, {x: [1.0, 2.0]})  # d/dw (w.x)^2 = 2 (w.x) x = 2 * -3 * [1, 2]
        np.testing.assert_allclose(sess.run(w), [1.0 + 0.6, -2.0 + 1.2], rtol=1e-6)
        sess.run(step, {x: [-1.0, -2.0]})  # d/dw |w|^2 = 2w
        np.testing.assert_allclose(sess.run(w), np.array([1.6, -0.8]) * 0.8, rtol=1e-6)


def test_case_picks_the_first_true_predicate():
    x = tf.placeholder(tf.float32, [])
    out = tf.case([(x < 0, lambda: x * -1.0), (x < 10, lambda: x * 2.0)], default=lambda: x * 0.0)
    no_default = tf.case([(x < 0, lambda: x - 1.0), (x < 10, lambda: x + 1.0)])
    with tf.Session() as sess:
        assert [sess.run(out, {x: v}) for v in (-3.0, 3.0, 30.0)] == [3.0, 6.0, 0.0]
        assert [sess.run(no_default, {x: v}) for v in (-3.0, 3.0, 30.0)] == [-4.0, 4.0, 31.0]


# -- while_loop -----------------------------------------------------------------------------------------------
def _power(x, n=4):
    """x**n by repeated multiplication; gradient flows to the captured x and the initial value."""
    start = x * 1.0
    _, out = tf.while_loop(lambda i, acc: i < n - 1, lambda i, acc: (i + 1, acc * x), [tf.constant(0), start])
    return out


def _newton_sqrt(a):
    _, y = tf.while_loop(lambda i, y: i < 8, lambda i, y: (i + 1, 0.5 * (y + a / y)), (0, a))
    return y


def test_while_loop_values():
    x = np.array([0.5, -1.25, 2.0])
    check_op(_power, lambda a: a ** 4, [x], modes=("const", "feed", "partial"))
    check_op(_newton_sqrt, np.sqrt, [np.array([2.0, 9.0, 0.25])])


def test_while_loop_gradients_match_finite_differences():
    check_grad(_power, [np.array([0.5, -1.25, 2.0])])
    check_grad(_newton_sqrt, [np.array([2.0, 9.0, 0.25])])
    # np.sqrt's derivative, as a second check on the reverse loop
    a = tf.placeholder(tf.float64, [3])
    np.testing.assert_allclose(_run(tf.gradients(_newton_sqrt(a), a)[0], {a: [2.0, 9.0, 0.25]}),
                               0.5 / np.sqrt([2.0, 9.0, 0.25]), rtol=1e-9)


def test_while_loop_structures_single_var_and_maximum_iterations():
    x = tf.constant(3.0)
    single = tf.while_loop(lambda v: v < 10, lambda v: v + 1, [x])
    assert isinstance(single, tf.Tensor)
    State = collections.namedtuple("State", "count total")
    out = tf.while_loop(lambda s: s.count < 4, lambda s: State(s.count + 1, {"t": s.total["t"] * 2.0}),
                        [State(tf.constant(0), {"t": x})], return_same_structure=True)
    capped = tf.while_loop(lambda v: v < 10, lambda v: v + 1, [x], maximum_iterations=3)
    with tf.Session() as sess:
        assert sess.run(single) == 10.0
        assert sess.run(out) == [State(4, {"t": 48.0})]
        assert sess.run(capped) == 6.0


def test_while_loop_shape_invariants_allow_growth():
    rows = tf.zeros([1, 2])
    _, grown = tf.while_loop(lambda i, r: i < 3, lambda i, r: (i + 1, tf.concat([r, r], 0)), [0, rows],
                             shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, 2])])
    assert grown.shape.as_list() == [None, 2]
    assert _run(grown).shape == (8, 2)
    with pytest.raises(ValueError, match="enters the loop with shape"):
        tf.while_loop(lambda r: tf.reduce_sum(r) < 3, lambda r: tf.concat([r, r], 0), [rows])


def test_while_loop_in_cond_and_cond_in_while():
    x = tf.placeholder(tf.float64, [])

    def collatz_steps(n):
        return tf.while_loop(lambda n, k: n > 1,
                             lambda n, k: (tf.cond(tf.equal(n % 2, 0), lambda: n // 2, lambda: 3 * n + 1), k + 1),
                             [n, 0])[1]

    steps = collatz_steps(tf.constant(27))
    nested = tf.cond(x > 0, lambda: _power(x, 3), lambda: -x)
    with tf.Session() as sess:
        assert sess.run(steps) == 111
        assert sess.run(nested, {x: 2.0}) == 8.0 and sess.run(nested, {x: -2.0}) == 2.0
        assert sess.run(tf.gradients(nested, x)[0], {x: 2.0}) == 12.0


def test_while_loop_optimizes_variables_read_in_the_body():
    w = tf.Variable(0.5, name="w")
    _, y = tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y * w + 1.0), [0, tf.constant(1.0)])
    step = tf.train.GradientDescentOptimizer(0.1).minimize(y)  # y = w^3 + w^2 + w + 1
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(y) == pytest.approx(1.875)
        sess.run(step)
        assert sess.run(w) == pytest.approx(0.5 - 0.1 * (3 * 0.25 + 2 * 0.5 + 1))


def test_while_loop_back_prop_false_stops_gradients():
    x = tf.placeholder(tf.float32, [])
    y = tf.while_loop(lambda v: v < 100, lambda v: v * 2, [x], back_prop=False)
    assert tf.gradients(y, x) == [None]


def test_endless_loop_stops_at_the_deadline():
    x = tf.constant(1.0)
    forever = tf.while_loop(lambda v: v > 0, lambda v: v + 1, [x])
    with tf.Session() as sess, pytest.raises(errors.DeadlineExceededError):
        sess.run(forever, options=tf.RunOptions(timeout_in_ms=200))


# -- map_fn, scan, foldl, foldr -------------------------------------------------------------------------------
def test_map_fn_values_and_gradients():
    def fn(x):
        return tf.map_fn(lambda row: tf.reduce_sum(row * row) + row[0], x)

    x = np.array([[1.0, 2.0], [-0.5, 0.25], [3.0, -1.0]])
    check_op(fn, lambda a: (a * a).sum(axis=1) + a[:, 0], [x])
    check_grad(fn, [x])
    pairs = tf.map_fn(lambda t: (t[0] * 2, tf.cast(t[1], tf.float32)), (tf.constant([1.0, 2.0]), tf.constant([3, 4])),
                      dtype=(tf.float32, tf.float32))
    assert [list(v) for v in _run(pairs)] == [[2.0, 4.0], [3.0, 4.0]]
    with pytest.raises(ValueError, match="fn returned 2 tensors where 1"):
        tf.map_fn(lambda t: (t, t), tf.constant([1.0, 2.0]))


def test_scan_is_cumulative():
    x = np.array([1.0, -2.0, 0.5, 4.0])
    check_op(lambda a: tf.scan(lambda acc, v: acc + v, a), np.cumsum, [x])
    check_op(lambda a: tf.scan(lambda acc, v: acc * v, a, initializer=tf.constant(2.0, tf.float64)),
             lambda a: 2 * np.cumprod(a), [x])
    check_op(lambda a: tf.scan(lambda acc, v: acc + v, a, reverse=True), lambda a: np.cumsum(a[::-1])[::-1], [x])
    check_grad(lambda a: tf.scan(lambda acc, v: acc * v + v, a), [x])


def test_foldl_and_foldr():
    x = np.array([1.0, -2.0, 0.5, 4.0])
    check_op(lambda a: tf.foldl(lambda acc, v: acc * 2 + v, a), lambda a: np.float64(((1 * 2 - 2) * 2 + 0.5) * 2 + 4),
             [x])
    check_op(lambda a: tf.foldr(lambda acc, v: acc * 2 + v, a), lambda a: np.float64(((4 * 2 + 0.5) * 2 - 2) * 2 + 1),
             [x])
    check_grad(lambda a: tf.foldl(lambda acc, v: acc * v + 1.0, a, initializer=tf.constant(0.5, tf.float64)), [x])


# -- malformed functional nodes -------------------------------------------------------------------------------
def _compile(graph, fetch):
    program = ir.Program(graph.nodes(), fetches=(fetch.name,))
    return compile_program(program, "test")


def _if_attrs(then_args, then_outputs, else_args, else_outputs):
    return {"then_args": then_args, "then_outputs": then_outputs, "else_args": else_args,
            "else_outputs": else_outputs, "Tout": [tf.float32], "output_shapes": [ir.ShapeAttr([])]}


@pytest.mark.parametrize("problem", ["not_funcarg", "later_node", "stray_arg", "wrong_type", "missing"])
def test_malformed_if_is_invalid_argument(problem):
    graph = tf.Graph()
    with graph.as_default():
        pred, x = tf.constant(True), tf.placeholder(tf.float32, [], name="x")
        arg = apply_op("FuncArg", (), {"dtype": tf.float32, "shape": ir.ShapeAttr([])}, "arg").outputs[0]
        other = apply_op("FuncArg", (), {"dtype": tf.float32, "shape": ir.ShapeAttr([])}, "other").outputs[0]
        doubled, strayed = arg * 2.0, other * 2.0
        ints = tf.cast(arg, tf.int32)
        args, outputs = {"not_funcarg": (["x"], [doubled.name]), "later_node": (["arg"], ["later:0"]),
                         "stray_arg": (["arg"], [strayed.name]), "wrong_type": (["arg"], [ints.name]),
                         "missing": (["arg"], ["nowhere:0"])}[problem]
        out = apply_op("If", (pred, x), _if_attrs(args, outputs, ["arg"], [doubled.name]), "If").outputs[0]
        tf.identity(x, name="later")
    with pytest.raises(errors.InvalidArgumentError, match="node 'If' \\(If"):
        _compile(graph, out)


def test_plans_with_functions_survive_the_wire_format():
    """A plan's If/While sub-plans travel in PlanStep.functions (plan cache, remote workers)."""
    x = tf.placeholder(tf.float64, [3], name="x")
    y = tf.cond(tf.reduce_sum(x) > 0, lambda: _power(x, 3), lambda: x - 1.0)
    program = ir.Program(tf.get_default_graph().nodes(), feeds=("x:0",), fetches=(y.name,))
    plan = compile_program(program, "wire")
    back = convert.plan_from_bytes(convert.plan_to_bytes(plan))
    assert str(back) == str(plan)
    for value in ([1.0, 2.0, -0.5], [-1.0, -2.0, 0.5]):
        feed = np.array(value)
        got = [LoadedPlan(p).run(ExecContext(), [feed])[0] for p in (plan, back)]
        np.testing.assert_array_equal(got[0], got[1])
        np.testing.assert_allclose(got[0], feed ** 3 if feed.sum() > 0 else feed - 1.0)


# -- TensorArray, as dynamic_rnn uses it ----------------------------------------------------------------------
def _rnn(inputs, w):
    """h_t = tanh(x_t w + h_{t-1}) over time-major inputs; all h_t stacked, as TF1's dynamic_rnn loop."""
    steps = tf.shape(inputs)[0]
    input_ta = tf.TensorArray(inputs.dtype, size=steps).unstack(inputs)
    output_ta = tf.TensorArray(inputs.dtype, size=steps)

    def body(t, h, out):
        h = tf.tanh(tf.matmul(input_ta.read(t), w) + h)
        return t + 1, h, out.write(t, h)

    h0 = tf.zeros([tf.shape(inputs)[1], 3], inputs.dtype)
    _, last, out = tf.while_loop(lambda t, h, out: t < steps, body, (0, h0, output_ta))
    return out.stack(), last


def _np_rnn(inputs, w):
    h, outs = np.zeros((inputs.shape[1], 3)), []
    for x in inputs:
        h = np.tanh(x @ w + h)
        outs.append(h)
    return np.stack(outs), h


def test_tensor_array_in_a_loop_runs_an_rnn():
    rng = np.random.default_rng(3)
    inputs, w = rng.standard_normal((5, 2, 4)) * 0.5, rng.standard_normal((4, 3)) * 0.5
    check_op(_rnn, _np_rnn, [inputs, w], static_shape=False)
    check_grad(_rnn, [inputs, w])
    ta = tf.TensorArray(tf.float32, size=2).write(0, [1.0, 2.0]).write(1, [3.0, 4.0])
    with tf.Session() as sess:
        assert sess.run([ta.size(), ta.read(1)])[0] == 2
        np.testing.assert_array_equal(sess.run(ta.stack()), [[1.0, 2.0], [3.0, 4.0]])
        with pytest.raises(errors.InvalidArgumentError, match="index 2 written with 0 rows"):
            sess.run(tf.TensorArray(tf.float32, size=3).write(2, 1.0).stack())


def test_gradients_through_nested_loops_and_conds():
    def cond_in_loop(x):
        body = lambda i, y: (i + 1, tf.cond(tf.reduce_sum(y) > 1.0, lambda: y * 0.5 * x, lambda: y * x + 1.0))
        return tf.while_loop(lambda i, y: i < 4, body, [0, x])[1]

    def loop_in_loop(x):
        def outer(i, y):
            inner = tf.while_loop(lambda j, z: j < i, lambda j, z: (j + 1, tf.sin(z) * x), [0, y])[1]
            return i + 1, inner + y

        return tf.while_loop(lambda i, y: i < 3, outer, [0, x])[1]

    x = np.array([0.75, -0.5, 1.25])
    check_grad(cond_in_loop, [x])
    check_grad(loop_in_loop, [x])


def test_branches_returning_ops_and_creating_variables():
    v = tf.Variable(0.0, name="v")
    p = tf.placeholder(tf.bool, [])
    update = tf.cond(p, lambda: tf.group(v.assign(1.0)), lambda: tf.group(v.assign(2.0)))
    assert isinstance(update, tf.Operation)
    x = tf.constant([1.0, 2.0])
    y = tf.cond(p, lambda: tf.Variable(5.0, name="inner") * x, lambda: x)  # its initializer runs outside
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(update, {p: False})
        assert sess.run(v) == 2.0
        sess.run(update, {p: True})
        assert sess.run(v) == 1.0
        np.testing.assert_array_equal(sess.run(y, {p: True}), [5.0, 10.0])


def test_function_bodies_are_optimized_like_any_program():
    """A loop body gets the whole pipeline: constants fold, elementwise chains fuse, the outer plan is one step."""
    x = tf.placeholder(tf.float32, [3], name="x")
    _, y = tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, tf.exp(y * (tf.constant(0.25) * tf.constant(2.0)))),
                         [0, x])
    plan = compile_program(ir.Program(tf.get_default_graph().nodes(), feeds=("x:0",), fetches=(y.name,)), "opt")
    assert [s.op for s in plan.steps] == ["While"]
    body = plan.steps[0].attrs["body_plan"]
    assert sorted(s.op for s in body.steps) == ["Add", "Fused"]
    assert any(v.shape == () and v == 0.5 for v in body.constants.values())  # 0.25 * 2.0, folded
    np.testing.assert_allclose(_run(y, {x: [0.0, 0.1, -0.1]}),
                               np.exp(0.5 * np.exp(0.5 * np.exp(0.5 * np.array([0.0, 0.1, -0.1])))), rtol=1e-5)
