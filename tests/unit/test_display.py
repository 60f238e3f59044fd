"""Pictures for Jupyter: a Graph, an op's subgraph and a compiled plan render as SVG whose node groups and
edge groups are exactly the graph's ops and data/control edges; errors render as one readable message."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import graphexec as tf
from graphexec import display, errors, ir
from graphexec.compiler import pipeline

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str):
    """(node titles, edge titles, {node title: its text lines}, control edge titles) of an SVG picture."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and float(root.get("width")) > 0 and float(root.get("height")) > 0
    nodes, edges, texts, dashed = [], set(), {}, set()
    for group in root.iter(f"{SVG}g"):
        title = group.find(f"{SVG}title").text
        if group.get("class").startswith("node"):
            nodes.append(title)
            texts[title] = [t.text for t in group.iter(f"{SVG}text")]
        elif group.get("class") == "edge":
            edges.add(title)
            if group.find(f"{SVG}path").get("stroke-dasharray"):
                dashed.add(title)
    return nodes, edges, texts, dashed


def _model():
    x = tf.placeholder(tf.float32, [None, 4], name="x")
    w = tf.constant([[1.0], [2.0], [3.0], [4.0]], name="w")
    with tf.device("/cpu:0"):
        y = tf.nn.relu(tf.matmul(x, w) * 2.0 + 1.0, name="y")
    with tf.control_dependencies([y]):
        done = tf.no_op(name="done")
    unrelated = tf.constant(5.0, name="unrelated")
    return x, y, done, unrelated


def test_graph_svg_has_every_op_and_edge():
    _model()
    graph = tf.get_default_graph()
    nodes, edges, texts, dashed = _parse(graph._repr_svg_())
    assert sorted(nodes) == sorted(op.name for op in graph.get_operations())
    expected = {f"{t.op.name}->{op.name}" for op in graph.get_operations() for t in op.inputs}
    expected |= {f"{c.name}->{op.name}" for op in graph.get_operations() for c in op.control_inputs}
    assert edges == expected and "MatMul->mul" in edges and "x->MatMul" in edges
    assert dashed == {"y->done"}
    assert texts["x"] == ["x", "Placeholder  float32[?,4]"]
    assert texts["MatMul"] == ["MatMul", "MatMul  float32[?,1]", "/cpu:0"]


def test_op_svg_draws_only_what_the_op_depends_on():
    _, y, _, _ = _model()
    nodes, edges, _, _ = _parse(y.op._repr_svg_())
    assert set(nodes) == {"x", "w", "MatMul", "Const", "mul", "Const_1", "add", "y"}
    assert "unrelated" not in nodes and "done" not in nodes
    assert "add->y" in edges


def test_plan_svg_shows_steps_fused_groups_feeds_and_fetches():
    _model()
    graph = tf.get_default_graph()
    program = pipeline.optimize(ir.Program(graph.nodes(), feeds=("x:0",), fetches=("y:0",)))
    plan = pipeline.build_plan(program, graph_digest="0" * 64)
    nodes, edges, texts, _ = _parse(plan._repr_svg_())
    assert nodes == ["feed x:0", "step 0: MatMul", "step 1: y", "fetch y:0"]
    assert edges == {"feed x:0->step 0: MatMul", "step 0: MatMul->step 1: y", "step 1: y->fetch y:0"}
    assert texts["step 1: y"][1:3] == ["Fused  float32[?,1]", "fuses add/affine_mul, add, y"]


def test_large_graphs_draw_a_bounded_picture():
    value = tf.constant(0.0)
    for _ in range(display.MAX_BOXES + 10):
        value = value + 1.0
    svg = tf.get_default_graph()._repr_svg_()
    nodes, _, _, _ = _parse(svg)
    assert len(nodes) == display.MAX_BOXES
    assert f"{2 * (display.MAX_BOXES + 10) + 1 - display.MAX_BOXES} more nodes not drawn" in svg


def test_names_are_escaped():
    tf.constant(1.0, name="a<b>&c")
    nodes, _, _, _ = _parse(tf.get_default_graph()._repr_svg_())
    assert nodes == ["a<b>&c"]


def test_run_errors_render_as_their_message():
    x = tf.placeholder(tf.float32, [2], name="x")
    y = tf.identity(x, name="y")
    with tf.Session() as sess, pytest.raises(errors.InvalidArgumentError) as caught:
        sess.run(y)
    lines = caught.value._render_traceback_()
    assert lines[0].startswith("tf.errors.InvalidArgumentError: ") and "x" in lines[0]
    assert lines == [lines[0], *str(caught.value).splitlines()[1:]]
