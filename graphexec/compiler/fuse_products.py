"""Fusion of a matrix product with what follows it alone, so each block of the product is finished by the
thread that computed it while the block is in that core's cache (ops/interruptible.py), instead of in a
pass of its own over the whole result (TF's grappler fuses MatMul + BiasAdd + Relu the same way):

    Relu(Add(MatMul(a, b), bias))            ->  _FusedMatMul(a, b, bias) {activation="Relu"}
    Add(MatMul(a, b), bias)                  ->  _FusedMatMul(a, b, bias) {activation=""}
    ApplyGradientDescent(alpha, MatMul(a, b)) ->  _MatMulApplyGradientDescent(alpha, a, b)

`bias` is a vector of one value per column, on either side of the Add; both factors are matrices. The
product's (and the Add's, under a Relu) value must have no other use: not fetched, no other consumer, no
control edges, the same device. Each fused kernel does the operations of the nodes it replaces in their
order, so the bits are the same (W3's step, Zen 4: the weights' update no longer reads an 800 KB gradient
back from memory). The fused node keeps the last node's name, so its consumers and fetches are unchanged.
"""
from __future__ import annotations

from dataclasses import replace

from graphexec import ir
from graphexec.compiler.util import canonical, producer, sole_reader, type_of
from graphexec.ops.math_ops import FusedMatMul
from graphexec.ops.training_ops import MatMulApplyGradientDescent

PRODUCT_ATTRS = ("transpose_a", "transpose_b")


def fuse_product_epilogues(program: ir.Program) -> ir.Program:
    if not any(node.op == "MatMul" for node in program.nodes):
        return program
    by_name = program.by_name()
    only_feeds = sole_reader(program)

    def product_for(tensor: str, user: ir.Node) -> ir.Node | None:
        """The MatMul of two matrices that makes `tensor` and that `user` alone reads, or None."""
        node = producer(by_name, tensor)
        if node is None or node.op != "MatMul" or not only_feeds(node, user):
            return None
        ranks = [len(type_of(by_name, canonical(t)).shape or ()) for t in node.inputs]
        return node if ranks == [2, 2] and len(node.outputs[0].shape or ()) == 2 else None

    def biased(add: ir.Node | None):
        """(MatMul, bias tensor) when `add` adds a column vector to a product read by it alone."""
        if add is None or add.op != "Add" or add.control_inputs:
            return None
        for side in (0, 1):
            product = product_for(add.inputs[side], add)
            bias = canonical(add.inputs[1 - side])
            if (product is not None and product.outputs[0] == add.outputs[0]
                    and _is_column_vector(type_of(by_name, bias), product.outputs[0])):
                return product, bias
        return None

    fused: dict[str, ir.Node] = {}  # last node's name -> the fused node
    absorbed: set[str] = set()

    def fuse(last: ir.Node, op: str, inputs: tuple, product: ir.Node, covered: tuple, **attrs) -> None:
        covers = tuple(n.name for n in (product, *covered))
        attrs = {**attrs, **{k: product.attrs[k] for k in PRODUCT_ATTRS if k in product.attrs}, "covers": covers}
        fused[last.name] = replace(last, op=op, inputs=inputs, attrs=ir.Attrs(attrs))
        absorbed.update(covers[:-1])

    for node in program.nodes:
        if node.op == "Relu" and not node.control_inputs:
            add = producer(by_name, node.inputs[0])
            found = biased(add)
            if found is not None and only_feeds(add, node):
                product, bias = found
                fuse(node, FusedMatMul.name, (*product.inputs, bias), product, (add, node), activation="Relu")
        elif node.op == "ApplyGradientDescent":
            product = product_for(node.inputs[1], node)
            if product is not None:
                fuse(node, MatMulApplyGradientDescent.name, (node.inputs[0], *product.inputs), product, (node,),
                     **node.attrs)
    for node in program.nodes:
        if node.name not in absorbed and node.name not in fused and (found := biased(node)) is not None:
            product, bias = found
            fuse(node, FusedMatMul.name, (*product.inputs, bias), product, (node,), activation="")
    if not fused:
        return program
    return program.with_nodes([fused.get(n.name, n) for n in program.nodes if n.name not in absorbed])


def _is_column_vector(bias: ir.TensorType, out: ir.TensorType) -> bool:
    return (out.shape is not None and out.shape[-1] is not None and bias.dtype == out.dtype
            and tuple(bias.shape or ()) == (out.shape[-1],))
