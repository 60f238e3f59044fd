"""Variable reads and updates run as early as they may (compiler/schedule.py): an optimizer's update runs
right after its gradient, before the gradients of the layers below; the nodes that touch one variable
keep their order, as do all other nodes; control inputs and function bodies that touch variables hold an
update back; training computes the same bits with the pass as without it. The executor then announces
each variable the run will not write again (executor.final_writes)."""
import numpy as np
import pytest

import graphexec as tf
from graphexec import dtypes, ir
from graphexec.compiler import pipeline
from graphexec.compiler.plan import Plan, Step
from graphexec.compiler.schedule import schedule_updates_early
from graphexec.runtime.executor import final_writes

F32 = ir.TensorType(dtypes.float32, (2,))


def _node(name, op, *inputs, var=None, control=(), **attrs):
    if var is not None:
        attrs.update(var=var, dtype=dtypes.float32, shape=ir.ShapeAttr((2,)))
    return ir.Node(name, op, tuple(f"{i}:0" for i in inputs), tuple(control), attrs, (F32,))


def _order(nodes):
    return [n.name for n in schedule_updates_early(ir.Program(tuple(nodes), (), ("out:0",))).nodes]


def test_an_update_runs_right_after_its_gradient_and_everything_else_keeps_its_order():
    nodes = [_node("x", "Feed"), _node("grad", "Square", "x"), _node("below", "Exp", "x"),
             _node("below2", "Exp", "below"), _node("lr", "Const", value=np.float32(0.1)),
             _node("w", "ReadVariable", var="w"), _node("update", "AssignSub", "grad", var="w"),
             _node("out", "Identity", "below2")]
    # constants and feeds first; the read of w has nothing to wait for; the update follows its gradient
    assert _order(nodes) == ["x", "lr", "w", "grad", "update", "below", "below2", "out"]


def test_the_nodes_that_touch_one_variable_keep_their_order():
    nodes = [_node("x", "Feed"), _node("slow", "Exp", "x"), _node("read1", "ReadVariable", var="v"),
             _node("assign", "Assign", "slow", var="v"), _node("slow2", "Exp", "slow"),
             _node("read2", "ReadVariable", var="v"), _node("other", "ReadVariable", var="u"),
             _node("late", "ReadVariable", var="v", control=("slow2",)), _node("assign2", "Assign", "x", var="v"),
             _node("add", "AssignAdd", "slow2", var="v"), _node("out", "Identity", "read2")]
    order = _order(nodes)
    # a read waits for the update before it, an update for the reads and the update before it
    assert order == ["x", "read1", "other", "slow", "assign", "read2", "slow2", "late", "assign2", "add", "out"]


def test_an_update_waits_for_its_control_inputs_and_for_bodies_that_touch_variables():
    body = Plan("body", (), (), (Step("r", "ReadVariable", ir.as_attrs({"var": "z"}), (), (0,), ()),), 1)
    nodes = [_node("x", "Feed"), _node("grad", "Square", "x"), _node("slow", "Exp", "x"),
             _node("update", "AssignSub", "grad", var="w", control=("slow",)),
             _node("loop", "Exp", "x", body=body), _node("update2", "AssignSub", "grad", var="u"),
             _node("out", "Identity", "slow")]
    order = _order(nodes)
    assert order.index("update") == order.index("slow") + 1
    assert order.index("update2") == order.index("loop") + 1  # a body that reads any variable holds it back


def test_a_program_without_anything_to_move_is_returned_as_it_is():
    program = ir.Program((_node("x", "Feed"), _node("w", "ReadVariable", var="w"),
                          _node("out", "Mul", "x", "w")), (), ("out:0",))
    assert schedule_updates_early(program) is program


def _mlp_training(steps):
    """Losses and final weights of `steps` Adam steps of a two-layer MLP, in a session."""
    tf.reset_default_graph()
    rng = np.random.default_rng(0)
    x = tf.placeholder(tf.float32, [16, 12])
    w1 = tf.Variable(rng.standard_normal((12, 32)).astype(np.float32))
    w2 = tf.Variable(rng.standard_normal((32, 4)).astype(np.float32))
    loss = tf.reduce_mean(tf.square(tf.matmul(tf.tanh(tf.matmul(x, w1)), w2)))
    train = tf.train.AdamOptimizer(0.01).minimize(loss)
    traced = tf.RunMetadata()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        losses = [sess.run([train, loss], {x: rng.standard_normal((16, 12)).astype(np.float32)},
                           options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE), run_metadata=traced)[1]
                  for _ in range(steps)]
        return losses, sess.run([w1, w2]), traced.plan_text


def test_training_computes_the_same_bits_and_the_top_layer_is_updated_before_the_gradients_below(monkeypatch):
    losses, weights, plan = _mlp_training(3)
    steps = [line.split("  # ")[-1].split()[0] for line in plan.splitlines() if "  # " in line]
    top = steps.index("Adam/update_Variable_1/ApplyAdam")
    assert top < steps.index("gradients/MatMul_grad/MatMul_1")  # w1's gradient comes after w2's update
    assert top > steps.index("gradients/MatMul_1_grad/MatMul_1")  # w2's own gradient comes before it
    monkeypatch.setattr(pipeline, "PASSES", tuple(p for p in pipeline.PASSES if p is not schedule_updates_early))
    losses_before, weights_before, plan_before = _mlp_training(3)
    assert plan_before != plan
    np.testing.assert_array_equal(losses, losses_before)
    for after, before in zip(weights, weights_before):
        np.testing.assert_array_equal(after, before)


def test_each_variable_is_announced_once_after_its_last_update():
    def step(name, op, var):
        return Step(name, op, ir.as_attrs({"var": var}), (), (0,), ())

    steps = (step("a", "Assign", "v"), step("r", "ReadVariable", "v"), step("b", "AssignAdd", "v"),
             step("c", "Assign", "u"))
    assert final_writes(Plan("p", (), (), steps, 1)) == {2: ("v",), 3: ("u",)}
    body = Plan("body", (), (), (step("in", "AssignAdd", "v"),), 1)
    loop = Step("loop", "While", ir.as_attrs({"body": body}), (), (0,), ())
    assert final_writes(Plan("p", (), (), (*steps, loop), 1)) == {}  # its body may write v any number of times


@pytest.mark.parametrize("optimizer", ["Momentum", "RMSProp"])
def test_an_update_announces_its_slot_variables_too(optimizer):
    tf.reset_default_graph()
    w = tf.Variable(np.ones(3, np.float32), name="w")
    loss = tf.reduce_sum(tf.square(w))
    opt = tf.train.MomentumOptimizer(0.1, 0.9) if optimizer == "Momentum" else tf.train.RMSPropOptimizer(0.1)
    train = opt.minimize(loss)
    from graphexec.compiler.pipeline import compile_program
    graph = tf.get_default_graph()
    plan = compile_program(ir.Program(graph.nodes(), (), (), (train.name,), graph.seed), graph.digest())
    announced = {name for names in final_writes(plan).values() for name in names}
    slots = {name for name in announced if name != "w"}
    assert "w" in announced and slots and all(name.startswith("w/") for name in slots)
