"""The math-side op families (math and reductions, convert, state, training, random, internal) declare
their signature: input names and typed attrs with defaults, checked when a graph is built and when one
is decoded."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors, ir
from graphexec.rpc import convert
from graphexec.rpc.graph_types import GraphTypes
from graphexec.framework import apply_op
from graphexec.ops import registry
from graphexec.ops.registry import REGISTRY
from graphexec.proto.v1 import graph_pb2

MATH_SIDE_MODULES = ("math_ops", "reduction_ops", "convert", "state_ops", "training_ops", "random_ops", "internal_ops")
OPS_DIR = Path(__file__).resolve().parents[2] / "graphexec" / "ops"


def _math_side_ops():
    """Ops whose kernel is defined in a math-side module (Fused keeps its compiler-built schema-less form)."""
    return sorted(name for name, d in REGISTRY.items()
                  if d.kernel.__module__.rsplit(".", 1)[-1] in MATH_SIDE_MODULES and name != "Fused")


def test_the_math_side_registers_the_ops_it_is_known_for():
    names = set(_math_side_ops())
    assert {"Add", "Sum", "MatMul", "Cast", "AddN", "ArgMax", "Const", "Assign", "ApplyAdam", "RandomNormal",
            "Feed", "SumToShape", "ProdOfOthers"} <= names


@pytest.mark.parametrize("name", _math_side_ops())
def test_every_math_side_op_declares_its_inputs_and_typed_attrs(name):
    definition = REGISTRY[name]
    assert definition.inputs is not None, f"{name} declares no inputs"
    for key, spec in definition.attrs.items():
        assert spec.type in registry.ATTR_TYPES, (name, key)
        if not spec.required and spec.default is not None:
            assert spec.check(spec.default), f"default of {name}.{key} is not a {spec.type}"


def test_variadic_and_nullable_declarations():
    assert [(i.name, i.variadic) for i in REGISTRY["AddN"].inputs] == [("inputs", True)]
    axis = REGISTRY["Sum"].attrs["axis"]
    assert (axis.type, axis.default, axis.nullable) == ("list(int)", None, True)
    assert REGISTRY["ArgMax"].attrs["output_type"].default is tf.int64


def _raises_naming(fn, *words):
    with pytest.raises(errors.InvalidArgumentError) as failure:
        fn()
    for word in words:
        assert word in str(failure.value)


def test_a_wrong_attr_type_names_op_attr_and_expected_type():
    x = tf.constant([1.0, 2.0])
    _raises_naming(lambda: apply_op("Sum", [x], {"axis": "zero", "keepdims": False}),
                   "Sum", "'axis'", "list(int) or None", "str")
    _raises_naming(lambda: apply_op("MatMul", [tf.ones([2, 2]), tf.ones([2, 2])], {"transpose_a": 1}),
                   "MatMul", "'transpose_a'", "bool")
    _raises_naming(lambda: apply_op("Cast", [x], {"DstT": "float64"}), "Cast", "'DstT'", "type")


def test_an_unknown_attr_is_named_with_the_ops_attrs():
    x = tf.constant([1.0, 2.0])
    _raises_naming(lambda: apply_op("Sum", [x], {"axes": (0,)}), "Sum", "'axes'", "axis, keepdims")
    _raises_naming(lambda: apply_op("Neg", [x], {"keepdims": True}), "Neg", "'keepdims'", "none")


def test_a_missing_required_attr_is_named():
    x = tf.constant([1.0, 2.0])
    _raises_naming(lambda: apply_op("Cast", [x], {}), "Cast", "'DstT'", "type")
    _raises_naming(lambda: apply_op("ReadVariable", [], {"var": "v", "dtype": tf.float32}), "ReadVariable", "'shape'")
    _raises_naming(lambda: apply_op("RandomUniformInt", [tf.constant([2])], {"dtype": tf.int32, "minval": 0}),
                   "RandomUniformInt", "'maxval'", "int")


def test_a_wrong_number_of_inputs_is_named():
    _raises_naming(lambda: apply_op("Add", [tf.constant(1.0)], {}), "Add", "2 inputs", "x, y")


def test_kernels_get_the_defaults_of_omitted_attrs_at_build_time_and_at_run_time():
    a = tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3))
    folded = apply_op("Sum", [a], {}).outputs[0]  # every axis, keepdims False: a build-time value
    assert folded.aval.shape == () and folded.aval.value == 15.0
    b = tf.placeholder(tf.float32, [3, 2])
    product = apply_op("MatMul", [a, b], {}).outputs[0]
    total = apply_op("Sum", [product], {}).outputs[0]
    index = apply_op("ArgMax", [a], {}).outputs[0]
    noise = apply_op("RandomNormal", [tf.constant([4], dtype=tf.int32)], {"dtype": tf.float32}).outputs[0]
    assert index.dtype is tf.int64
    with tf.Session() as sess:
        got_total, got_index, got_noise = sess.run([total, index, noise], {b: np.ones((3, 2), np.float32)})
    assert got_total == 30.0
    np.testing.assert_array_equal(got_index, [1, 1, 1])  # axis 0 by default
    assert got_noise.shape == (4,)


def test_gradients_read_defaulted_attrs():
    x = tf.placeholder(tf.float32, [2, 3])
    y = apply_op("Sum", [apply_op("MatMul", [x, tf.ones([3, 2])], {}).outputs[0]], {}).outputs[0]
    (dx,) = tf.gradients(y, x)
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(dx, {x: np.zeros((2, 3), np.float32)}), np.full((2, 3), 2.0))


def _decoded(op, attrs):
    graph = graph_pb2.GraphDef(format_version=1)
    convert.node_to_proto(ir.Node("c", "Const", attrs={"value": np.ones((2, 2), np.float32), "dtype": tf.float32}),
                       graph.nodes.add())
    node = graph.nodes.add(name="n", op=op, inputs=["c:0"])
    for key, value in attrs.items():
        convert.attr_to_proto(value, node.attrs[key])
    return convert.nodes_from_proto(graph, GraphTypes())


def test_decoding_checks_attrs_as_building_does():
    _raises_naming(lambda: _decoded("Sum", {"axis": "zero"}), "node 'n'", "Sum", "'axis'", "list(int)")
    _raises_naming(lambda: _decoded("Mean", {"keep_dims": True}), "node 'n'", "'keep_dims'")
    nodes = _decoded("Sum", {"axis": (0,)})  # keepdims omitted: its default applies
    assert nodes[-1].outputs[0].shape == (2,)


def _module_imports(module: str) -> set[str]:
    tree = ast.parse((OPS_DIR / f"{module}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.update(f"{node.module}.{a.name}" for a in node.names)
            out.add(node.module)
    return out


@pytest.mark.parametrize("module", ["math_ops", "reduction_ops", "state_ops", "training_ops", "control_ops", "convert"])
def test_math_side_gradients_build_other_families_by_name(module):
    """The array and nn families are reached through emit("OpName", ...), never imported."""
    other_families = {f"graphexec.ops.{m}" for m in ("array_ops", "nn_ops", "conv_ops", "pool_ops", "slicing_ops",
                                                      "joining_ops", "indexing_ops", "scan_ops")}
    assert not _module_imports(module) & other_families


@pytest.mark.parametrize("family", ["array_ops", "control_ops", "convert", "indexing_ops", "joining_ops", "math_ops",
                                    "random_ops", "reduction_ops", "scan_ops", "slicing_ops", "nn_ops"])
def test_a_family_api_is_public_as_it_lists_it(family):
    """An op wrapper is public once its family's __all__ names it: tf.<name>, or tf.nn.<name> for nn_ops."""
    module = importlib.import_module(f"graphexec.ops.{family}")
    namespace = tf.nn if family == "nn_ops" else tf
    assert module.__all__
    for name in module.__all__:
        assert getattr(namespace, name) is getattr(module, name), name
