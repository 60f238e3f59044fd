"""Compiler passes: each is pure, keeps the IR valid (verifier), and does what its name says."""
import numpy as np
import pytest

import graphexec as tf
from graphexec import ir
from graphexec.compiler import pipeline
from graphexec.compiler.cse import eliminate_common_subexpressions
from graphexec.compiler.feeds import bind_feeds
from graphexec.compiler.fold import fold_constants
from graphexec.compiler.fuse import fuse_elementwise
from graphexec.compiler.plan import build_plan
from graphexec.compiler.prune import prune
from graphexec.compiler.simplify import RULES, simplify
from graphexec.compiler.verify import VerificationError, verify


@pytest.fixture(autouse=True)
def fresh_graph():
    tf.reset_default_graph()


def program(fetches, feeds=(), targets=()):
    graph = tf.get_default_graph()
    return ir.Program(graph.nodes(), tuple(t.name for t in feeds), tuple(t.name for t in fetches),
                      tuple(op.name for op in targets))


def optimized(fetches, feeds=(), targets=()):
    return pipeline.optimize(program(fetches, feeds, targets), check=True)


def ops_of(prog):
    return [n.op for n in prog.nodes]


def test_prune_keeps_only_what_fetches_need():
    x = tf.placeholder(tf.float32, [3], name="x")
    y = tf.exp(x, name="needed")
    tf.matmul(tf.constant(np.ones((100, 100), np.float32)), tf.constant(np.ones((100, 100), np.float32)), name="expensive")
    pruned = prune(bind_feeds(program([y], [x])))
    assert [n.name for n in pruned.nodes] == ["x", "needed"]


def test_prune_follows_control_dependencies_and_targets():
    x = tf.placeholder(tf.float32, [], name="x")
    v = tf.Variable(1.0, name="v")
    with tf.control_dependencies([v.initializer]):
        y = tf.identity(x, name="y")
    names = {n.name for n in prune(bind_feeds(program([y], [x]))).nodes}
    assert {"x", "y", "v/Assign"} <= names


def test_constant_folding_and_cap():
    a = tf.constant([1.0, 2.0]) * 3.0 + 1.0
    folded = fold_constants(program([a]))
    assert ops_of(prune(folded)) == ["Const"]
    np.testing.assert_allclose(prune(folded).nodes[-1].attrs["value"], [4.0, 7.0])
    big = tf.constant(np.ones((1024, 1024), np.float32)) * 2.0  # 4 MiB result: over the cap, stays computed at run time
    assert "Mul" in ops_of(prune(fold_constants(program([big]))))


def test_stateful_ops_are_not_folded_or_merged():
    r1 = tf.random_uniform([2], seed=1) if hasattr(tf, "random_uniform") else None
    v = tf.Variable([1.0, 2.0])
    a, b = v + 1.0, v + 1.0
    prog = eliminate_common_subexpressions(program([a, b]))
    adds = [n for n in prog.nodes if n.op == "Add"]
    assert len(adds) == 1 and prog.fetches[0] == prog.fetches[1]
    assert r1 is None or "RandomUniform" in ops_of(fold_constants(program([r1])))


def test_cse_merges_identical_pure_nodes():
    x = tf.placeholder(tf.float32, [4], name="x")
    a = tf.exp(x) + tf.exp(x)
    prog = eliminate_common_subexpressions(bind_feeds(program([a], [x])))
    assert ops_of(prune(prog)).count("Exp") == 1


UNFUSED = tuple(p for p in pipeline.PASSES if p is not pipeline.fuse_elementwise)


def test_simplify_removes_identities_and_collapses_affine_chains():
    x = tf.placeholder(tf.float32, [5], name="x")
    y = ((x * 1.0 + 0.0) + 2.0) * 3.0 - 1.0
    prog = pipeline.optimize(program([y], [x]), passes=UNFUSED, check=True)
    assert ops_of(prog).count("Mul") == 1 and ops_of(prog).count("Add") == 1
    plain = pipeline.optimize(program([x * 1.0 + 0.0], [x]), check=True)
    assert ops_of(plain) == ["Feed"] and plain.fetches == ("x:0",)


def test_simplify_keeps_shape_changing_constants():
    x = tf.placeholder(tf.float32, [3], name="x")
    y = x + tf.constant(np.zeros((2, 3), np.float32))  # broadcasting changes the shape: not an identity
    assert "Add" in " ".join(str(n) for n in simplify(bind_feeds(program([y], [x]))).nodes)


def test_fusion_groups_elementwise_chain():
    x = tf.placeholder(tf.float32, [8], name="x")
    y = tf.tanh(tf.exp(tf.sin(x)))
    fused = fuse_elementwise(bind_feeds(program([y], [x])))
    assert ops_of(fused) == ["Feed", "Fused"]
    assert fused.nodes[-1].attrs["covers"] == ("Sin", "Exp", "Tanh")


def test_fusion_respects_fetched_intermediates():
    x = tf.placeholder(tf.float32, [8], name="x")
    s = tf.sin(x)
    y = tf.exp(s)
    assert "Sin" in ops_of(fuse_elementwise(bind_feeds(program([y, s], [x]))))


def test_plan_reuses_slots_and_prints_readably():
    x = tf.placeholder(tf.float32, [4], name="x")
    m = tf.matmul(tf.reshape(x, [2, 2]), tf.reshape(x, [2, 2]))
    y = tf.reduce_sum(tf.matmul(m, m))
    plan = build_plan(optimized([y], [x]), "d" * 64)
    assert plan.num_slots < sum(len(s.outputs) for s in plan.steps) + len(plan.constants) + 1
    text = str(plan)
    assert "feed  $0 <- x:0: float32[4]" in text and "MatMul" in text and "fetch Sum:0" in text


def test_verifier_rejects_broken_ir():
    a = ir.Node("a", "Const", attrs={"value": np.zeros(1), "dtype": tf.float64},
                outputs=(ir.TensorType(tf.float64, (1,)),))
    b = ir.Node("b", "Neg", inputs=("missing:0",), outputs=a.outputs)
    with pytest.raises(VerificationError, match="not defined before it"):
        verify(ir.Program((a, b)))
    with pytest.raises(VerificationError, match="duplicate node name"):
        verify(ir.Program((a, a)))
    with pytest.raises(VerificationError, match="unknown op"):
        verify(ir.Program((ir.Node("c", "NoSuchOp"),)))


def test_every_pass_is_pure():
    x = tf.placeholder(tf.float32, [3], name="x")
    y = (tf.exp(x) + tf.exp(x)) * 2.0 + tf.constant([1.0, 2.0, 3.0]) * 0.0
    before = program([y], [x])
    snapshot = str(before)
    for compiler_pass in pipeline.PASSES:
        compiler_pass(before) if compiler_pass is not pipeline.require_feeds else None
        assert str(before) == snapshot


def test_unfed_placeholder_is_reported_with_source_line():
    x = tf.placeholder(tf.float32, [3], name="needs_feed")
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError, match="needs_feed") as info:
        sess.run(x * 2.0)
    assert "test_compiler.py" in str(info.value)


def test_pruned_branch_never_executes():
    x = tf.placeholder(tf.float32, [3], name="x")
    cheap = tf.exp(x, name="cheap")
    expensive = tf.reduce_sum(tf.matmul(tf.constant(np.ones((1000, 1000), np.float32)) * x[0], tf.constant(np.ones((1000, 1000), np.float32))), name="expensive")
    both = tf.add(cheap, tf.constant(np.zeros(3, np.float32)), name="both")  # noqa: F841 - present in the graph, not fetched
    metadata = tf.RunMetadata()
    with tf.Session() as sess:
        out = sess.run(cheap, {x: [0.0, 1.0, 2.0]}, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                       run_metadata=metadata)
    np.testing.assert_allclose(out, np.exp([0.0, 1.0, 2.0]), rtol=1e-6)
    executed = {name for s in metadata.step_stats.node_stats for name in s.covers}
    assert executed == {"cheap"}
    assert expensive.op.name not in metadata.executed_nodes
    assert all(s.duration_micros >= 0 for s in metadata.step_stats.node_stats)


def test_owned_feed_buffers_are_reused_but_user_arrays_never_are():
    from graphexec.runtime.context import ExecContext
    from graphexec.runtime.executor import LoadedPlan

    x = tf.placeholder(tf.float32, [4], name="x")
    y = x * 2.0
    plan = build_plan(optimized([y], [x]), "d" * 64)
    user = np.arange(4, dtype=np.float32)
    out = LoadedPlan(plan).run(ExecContext(), [user])[0]
    np.testing.assert_array_equal(user, np.arange(4, dtype=np.float32))  # a user's array is left alone
    owned = np.arange(4, dtype=np.float32)
    donated = LoadedPlan(plan, feeds_owned=True).run(ExecContext(), [owned])[0]
    assert donated is owned and out is not user
    np.testing.assert_array_equal(donated, np.arange(4, dtype=np.float32) * 2)
    read_only = np.arange(4, dtype=np.float32)
    read_only.setflags(write=False)  # e.g. np.frombuffer over received bytes: computed afresh
    fresh = LoadedPlan(plan, feeds_owned=True).run(ExecContext(), [read_only])[0]
    assert fresh is not read_only and fresh.flags.writeable


def test_attrs_are_hashable_and_compare_by_type_and_content():
    a = ir.Attrs({"value": np.arange(3, dtype=np.float32), "axis": 1})
    same = ir.Attrs({"axis": 1, "value": np.arange(3, dtype=np.float32)})
    assert a == same and hash(a) == hash(same) and list(a) == ["axis", "value"]
    assert a != ir.Attrs({"axis": 1, "value": np.arange(3, dtype=np.float64)})  # dtype differs
    assert a != ir.Attrs({"axis": 1.0, "value": np.arange(3, dtype=np.float32)})  # 1 and 1.0 stay apart
    assert ir.Attrs({"keepdims": True}) != ir.Attrs({"keepdims": 1})
    assert a == {"axis": 1, "value": np.arange(3, dtype=np.float32)}  # a plain mapping compares by content
    assert dict(**a)["axis"] == 1 and a.get("missing") is None
    with pytest.raises(TypeError):
        a["axis"] = 2  # immutable
    assert isinstance(ir.Node("n", "NoOp", attrs={"x": 1}).attrs, ir.Attrs)  # plain dicts are wrapped


def test_shape_attr_of_unknown_rank_differs_from_scalar():
    unknown, scalar = ir.ShapeAttr(None), ir.ShapeAttr([])
    assert unknown != scalar and not unknown == scalar and hash(unknown) != hash(scalar)
    assert scalar == () and ir.ShapeAttr([2, None]) == ir.ShapeAttr([2, None])
    assert ir.Attrs({"shape": unknown}) != ir.Attrs({"shape": scalar})


def test_fused_node_holds_a_subprogram_that_prints_as_a_block():
    x = tf.placeholder(tf.float32, [4], name="x")
    c = tf.constant(np.ones(4, np.float32), name="c")
    y = tf.add(tf.multiply(x, c, name="m"), c, name="y")
    fused = fuse_elementwise(bind_feeds(program([y], [x]))).nodes[-1]
    body = fused.attrs["body"]
    assert isinstance(body, ir.Subprogram) and body.params == ("p0", "p1")
    assert str(fused) == ("%y: float32[4] = Fused(%x, %c) {covers=('m', 'y')} "
                          "{ %f0 = Mul(%p0, %p1); %f1 = Add(%f0, %p1) }")
    assert body.operands() == ((0, 1), (-1, 1))
    assert ir.Subprogram.from_operands(2, [(n.op, ops, n.attrs, n.outputs[0])
                                          for n, ops in zip(body.nodes, body.operands())]) == body


def test_simplify_is_a_table_of_small_rules():
    for op_names, rule in RULES:
        assert op_names and callable(rule)
    x = tf.placeholder(tf.float32, [2], name="x")
    y = tf.identity(tf.stop_gradient(x), name="y")
    out = simplify(bind_feeds(program([y], [x])))
    assert out.fetches == ("x:0",)


def test_prune_is_listed_once_and_reruns_until_no_dead_code_is_left():
    assert pipeline.PASSES.count(prune) == 1
    x = tf.placeholder(tf.float32, [3], name="x")
    y = (tf.exp(x) + tf.exp(x)) * 2.0 * 3.0 + tf.constant([1.0, 2.0, 3.0]) * 0.0
    out = pipeline.optimize(program([y], [x]), check=True)
    assert prune(out) == out  # nothing left for another prune to remove
    assert ops_of(out).count("Exp") <= 1 and "Fused" in ops_of(out)


def _relu_pool_gradient(x_value, ksize, stride, padding, also_fetch_pool_grad=False):
    x = tf.placeholder(tf.float32, x_value.shape, name="x")
    r = tf.nn.relu(x)
    z = tf.nn.max_pool(r, [1, ksize, ksize, 1], [1, stride, stride, 1], padding)
    weights = tf.constant(np.random.default_rng(1).normal(size=z.shape.as_list()).astype(np.float32))
    (grad,) = tf.gradients(tf.reduce_sum(z * weights), [x])
    pool_grad = tf.get_default_graph().get_operation_by_name("gradients/MaxPool_grad/MaxPoolGrad").outputs[0]
    fetches = [grad, pool_grad] if also_fetch_pool_grad else [grad]
    optimized = pipeline.optimize(program(fetches, [x]), passes=UNFUSED, check=True)  # unfused
    with tf.Session() as sess:
        return sess.run(grad, {x: x_value}), optimized, weights


def _first_max_routing(r, dy, ksize, stride, padding):
    """Reference: each window's gradient to its first maximum of r (TF's MaxPoolGrad), then the ReLU mask."""
    n, h, w, c = r.shape
    oh, ow = dy.shape[1:3]
    top = left = 0
    if padding == "SAME":
        top = max((oh - 1) * stride + ksize - h, 0) // 2
        left = max((ow - 1) * stride + ksize - w, 0) // 2
    grad = np.zeros(r.shape, np.float32)
    for b, i, j, k in np.ndindex(n, oh, ow, c):
        rows = range(max(i * stride - top, 0), min(i * stride - top + ksize, h))
        cols = range(max(j * stride - left, 0), min(j * stride - left + ksize, w))
        window = [(y, x) for y in rows for x in cols]
        y, x = max(window, key=lambda p: (r[b, p[0], p[1], k], -window.index(p)))
        grad[b, y, x, k] += dy[b, i, j, k]
    return np.where(r > 0, grad, np.float32(0))


@pytest.mark.parametrize("ksize, stride, padding", [(2, 2, "VALID"), (3, 2, "SAME"), (3, 1, "SAME")])
def test_relu_mask_moves_before_max_pool_gradient_with_the_same_bits(ksize, stride, padding):
    x_value = np.random.default_rng(0).normal(size=(2, 7, 6, 3)).astype(np.float32)
    x_value[0, :4, :4, :] = -1.0  # windows of ReLU zeros: ties, and maxima of 0 that the mask removes
    grad, optimized, weights = _relu_pool_gradient(x_value, ksize, stride, padding)
    # rewritten: the mask on the pooled side, then joined to the gradient, which keeps the pool's indices
    # (compiler/pool_indices.py)
    ops = ops_of(optimized)
    assert "_MaxPoolWithIndices" in ops and "_MaxPoolGradAtIndices" in ops and "ReluGrad" not in ops
    assert [n.attrs["relu_mask"] for n in optimized.nodes if n.op == "_MaxPoolGradAtIndices"] == [True]
    with tf.Session() as sess:
        dy = np.broadcast_to(sess.run(weights), grad.shape[:1] + tuple(sess.run(weights).shape[1:]))
    expected = _first_max_routing(np.maximum(x_value, 0), dy, ksize, stride, padding)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=0)  # overlapping windows sum in any order
    tf.reset_default_graph()
    unrewritten, optimized, _ = _relu_pool_gradient(x_value, ksize, stride, padding, also_fetch_pool_grad=True)
    ops = ops_of(optimized)
    assert ops.index("_MaxPoolGradAtIndices") < ops.index("ReluGrad")  # the pool gradient is fetched: left as built
    assert [n.attrs.get("relu_mask") for n in optimized.nodes if n.op == "_MaxPoolGradAtIndices"] == [None]
    np.testing.assert_array_equal(grad, unrewritten)
