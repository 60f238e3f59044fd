"""Fusion of a convolution with the bias and ReLU after it into one `_FusedConv2D` (TF's grappler does
the same): the bias and the activation are applied to each chunk of the convolution's result while it
is still in the cache, instead of in passes of their own over the whole result.

    Relu(Add(Conv2D(x, w), b))  ->  _FusedConv2D(x, w, b) {activation="Relu"}
    Add(Conv2D(x, w), b)        ->  _FusedConv2D(x, w, b) {activation=""}

`b` is a vector of one value per output channel (tf.nn.bias_add builds an Add), on either side of the
Add. The convolution's (and the Add's, under a Relu) value must have no other use: not fetched, no
other consumer, no control edges. Gradients were built on the graph before, from the Relu's output
and the incoming gradient alone, so they never need the fused nodes' values. The fused node keeps the
last node's name, so its consumers and fetches are unchanged.
"""
from __future__ import annotations

from dataclasses import replace

from graphexec import ir
from graphexec.compiler.util import canonical, producer, sole_reader, type_of
from graphexec.ops.conv_ops import FusedConv2D

FUSED_CONV = FusedConv2D.name
CONV_ATTRS = ("strides", "padding", "data_format")


def fuse_conv_epilogues(program: ir.Program) -> ir.Program:
    if not any(node.op == "Conv2D" for node in program.nodes):  # most programs: no lookups built
        return program
    by_name = program.by_name()
    only_feeds = sole_reader(program)

    def conv_of(add: ir.Node):
        """(Conv2D, bias tensor) when `add` adds a per-channel vector to a convolution read by it alone."""
        if add is None or add.op != "Add" or add.control_inputs:
            return None
        for conv_side in (0, 1):
            conv = producer(by_name, add.inputs[conv_side])
            bias = canonical(add.inputs[1 - conv_side])
            if (conv is not None and conv.op == "Conv2D" and conv.attrs.get("data_format", "NHWC") == "NHWC"
                    and only_feeds(conv, add) and conv.outputs[0] == add.outputs[0]
                    and _is_channel_vector(type_of(by_name, bias), conv.outputs[0])):
                return conv, bias
        return None

    chains = {}  # last node's name -> (conv, add, relu or None, bias)
    for node in program.nodes:
        if node.op == "Relu" and not node.control_inputs:
            add = producer(by_name, node.inputs[0])
            found = conv_of(add)
            if found is not None and only_feeds(add, node):
                chains[node.name] = (found[0], add, node, found[1])
    taken = {chain[1].name for chain in chains.values()}
    for node in program.nodes:
        if node.name not in taken and (found := conv_of(node)) is not None:
            chains[node.name] = (found[0], node, None, found[1])
    if not chains:
        return program
    absorbed = set()
    fused = {}
    for last, (conv, add, relu, bias) in chains.items():
        covers = tuple(n.name for n in (conv, add, relu) if n is not None)
        attrs = ir.Attrs({**{k: conv.attrs[k] for k in CONV_ATTRS if k in conv.attrs},
                          "activation": "Relu" if relu is not None else "", "covers": covers})
        fused[last] = replace(by_name[last], op=FUSED_CONV, inputs=(conv.inputs[0], conv.inputs[1], bias), attrs=attrs)
        absorbed.update(covers[:-1])
    return program.with_nodes([fused.get(n.name, n) for n in program.nodes if n.name not in absorbed])


def _is_channel_vector(bias: ir.TensorType, out: ir.TensorType) -> bool:
    return (out.shape is not None and len(out.shape) == 4 and out.shape[-1] is not None
            and bias.dtype == out.dtype and tuple(bias.shape or ()) == (out.shape[-1],))
