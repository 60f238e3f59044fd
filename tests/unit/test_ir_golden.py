"""Golden tests of printed IR: for each compiler pass, a small program's IR before and after the pass
is compared with the text in tests/unit/golden/ir/<case>.txt; any difference fails.

After an intended change to a pass or to the IR's printing, regenerate the files and review the diff:

    GRAPHEXEC_UPDATE_GOLDEN=1 PYTHONPATH=$PWD python3 -m pytest tests/unit/test_ir_golden.py
"""
from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import graphexec as tf
from graphexec import ir
from graphexec.compiler import pipeline
from graphexec.compiler.cse import eliminate_common_subexpressions
from graphexec.compiler.feeds import bind_feeds
from graphexec.compiler.fold import fold_constants
from graphexec.compiler.fuse import fuse_elementwise
from graphexec.compiler.fuse_products import fuse_product_epilogues
from graphexec.compiler.plan import build_plan
from graphexec.compiler.prune import prune
from graphexec.compiler.schedule import schedule_updates_early
from graphexec.compiler.simplify import simplify
from graphexec.compiler.verify import verify

GOLDEN_DIR = Path(__file__).parent / "golden" / "ir"
UPDATE = os.environ.get("GRAPHEXEC_UPDATE_GOLDEN", "") not in ("", "0")
REGENERATE = "GRAPHEXEC_UPDATE_GOLDEN=1 PYTHONPATH=$PWD python3 -m pytest tests/unit/test_ir_golden.py"


@pytest.fixture(autouse=True)
def fresh_graph():
    tf.reset_default_graph()


def program(fetches, feeds=(), targets=()) -> ir.Program:
    graph = tf.get_default_graph()
    return ir.Program(graph.nodes(), tuple(t.name for t in feeds), tuple(t.name for t in fetches),
                      tuple(op.name for op in targets))


def compare_with_golden(case: str, text: str) -> None:
    path = GOLDEN_DIR / f"{case}.txt"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"no golden file {path}; create it with: {REGENERATE}")
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            f"{path.name} (expected)", f"{path.name} (actual)"))
        pytest.fail(f"printed IR differs from {path}:\n{diff}\nIf the change is intended: {REGENERATE}")


def before_after(compiler_pass, before: ir.Program) -> str:
    after = compiler_pass(before)
    verify(after, compiler_pass.__name__)
    return f"# {compiler_pass.__name__}\nbefore:\n{before}\n\nafter:\n{after}\n"


def test_bind_feeds():
    x = tf.placeholder(tf.float32, [3], name="x")
    scale = tf.placeholder_with_default(tf.constant(2.0), [], name="scale")
    y = tf.multiply(x, scale, name="y")
    compare_with_golden("feeds", before_after(bind_feeds, program([y], [x])))


def test_prune():
    x = tf.placeholder(tf.float32, [3], name="x")
    v = tf.Variable(tf.zeros([3]), name="v")
    tf.exp(x, name="unused")
    with tf.control_dependencies([v.initializer]):
        y = tf.identity(x, name="y")
    compare_with_golden("prune", before_after(prune, bind_feeds(program([y], [x]))))


def test_fold_constants():
    x = tf.placeholder(tf.float32, [2], name="x")
    c = tf.add(tf.multiply(tf.constant([1.0, 2.0], name="c"), 3.0, name="c3"), 1.0, name="c31")
    y = tf.add(x, c, name="y")
    compare_with_golden("fold", before_after(fold_constants, bind_feeds(program([y], [x]))))


def test_fold_static_shapes():
    """Shape, Size and Rank fold where the input's static type gives them; a partial shape stays a step."""
    x = tf.placeholder(tf.float32, [2, 3], name="x")
    y = tf.placeholder(tf.float32, [None, 3], name="y")
    fixed = tf.add(tf.cast(tf.shape(x, name="shape_x"), tf.float32, name="cast"), 1.0, name="fixed")
    size, rank = tf.size(x, name="size_x"), tf.rank(y, name="rank_y")
    partial = tf.shape(y, name="shape_y")
    compare_with_golden("fold_shapes", before_after(fold_constants, bind_feeds(program([fixed, size, rank, partial],
                                                                                      [x, y]))))


def test_simplify():
    x = tf.placeholder(tf.float32, [4], name="x")
    a = tf.identity(x, name="a")
    chain = tf.subtract(tf.multiply(tf.add(a, 1.0, name="add"), 2.0, name="mul"), 0.5, name="sub")
    kept = tf.stop_gradient(tf.exp(chain, name="exp"), name="kept")
    wide = tf.add(x, tf.zeros([2, 4]), name="wide")  # broadcasting changes the shape: not affine
    compare_with_golden("simplify", before_after(simplify, bind_feeds(program([kept, wide], [x]))))


def test_cse():
    x = tf.placeholder(tf.float32, [4], name="x")
    e1, e2 = tf.exp(x, name="e1"), tf.exp(x, name="e2")
    f = tf.constant(np.float32(1.0), name="one_f32")
    f_again = tf.constant(np.float32(1.0), name="one_f32_again")
    i = tf.constant(np.int32(1), name="one_i32")  # equal value, different dtype: kept apart
    y = tf.add(tf.add(e1, f, name="s1"), tf.add(e2, f_again, name="s2"), name="y")
    compare_with_golden("cse", before_after(eliminate_common_subexpressions, bind_feeds(program([y, i], [x]))))


def test_fuse():
    x = tf.placeholder(tf.float32, [4], name="x")
    c = tf.constant(np.arange(4, dtype=np.float32), name="c")
    m = tf.multiply(tf.sin(x, name="s"), c, name="m")
    y = tf.tanh(tf.add(m, c, name="a"), name="y")
    z = tf.reduce_sum(y, name="z")
    compare_with_golden("fuse", before_after(fuse_elementwise, bind_feeds(program([z], [x]))))


def test_fuse_products():
    x = tf.placeholder(tf.float32, [2, 3], name="x")
    w = tf.Variable(np.ones((3, 4), np.float32), name="w")
    b = tf.Variable(np.zeros(4, np.float32), name="b")
    loss = tf.reduce_sum(tf.nn.relu(tf.add(tf.matmul(x, w, name="h"), b, name="a"), name="r"), name="loss")
    train = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
    optimized = pipeline.optimize(program([loss], [x], [train]), passes=pipeline.PASSES[:pipeline.PASSES.index(
        fuse_product_epilogues)])
    compare_with_golden("fuse_products", before_after(fuse_product_epilogues, optimized))


def test_schedule_updates_early():
    x = tf.placeholder(tf.float32, [2, 3], name="x")
    w1 = tf.Variable(np.ones((3, 3), np.float32), name="w1")
    w2 = tf.Variable(np.ones((3, 1), np.float32), name="w2")
    loss = tf.reduce_sum(tf.matmul(tf.tanh(tf.matmul(x, w1, name="h")), w2, name="y"), name="loss")
    train = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
    optimized = pipeline.optimize(program([loss], [x], [train]), passes=pipeline.PASSES[:-1])
    compare_with_golden("schedule", before_after(schedule_updates_early, optimized))


def test_plan():
    x = tf.placeholder(tf.float32, [4], name="x")
    w = tf.constant(np.ones((4, 2), np.float32), name="w")
    h = tf.exp(tf.sin(x, name="s"), name="e")
    y = tf.matmul(tf.reshape(h, [1, 4], name="r"), w, name="y")
    optimized = pipeline.optimize(program([y, h], [x]), check=True)
    plan = build_plan(optimized, "0123456789ab" + "0" * 52)
    compare_with_golden("plan", f"# build_plan\nprogram:\n{optimized}\n\nplan:\n{plan}\n")


@pytest.mark.skipif(UPDATE, reason="regenerating: every comparison passes by design")
def test_any_difference_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "GOLDEN_DIR", tmp_path)
    (tmp_path / "case.txt").write_text("program(feeds=[]) -> [y:0]\n")
    compare_with_golden("case", "program(feeds=[]) -> [y:0]\n")
    with pytest.raises(pytest.fail.Exception, match="differs"):
        compare_with_golden("case", "program(feeds=[]) -> [y:0] \n")  # one trailing space
    with pytest.raises(pytest.fail.Exception, match="no golden file"):
        compare_with_golden("missing", "")
