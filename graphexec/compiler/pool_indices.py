"""A max-pool whose gradient is in the same program keeps where each maximum came from, so that the
gradient reads those indices instead of finding every maximum again (TF's MaxPoolWithArgmax and
MaxPoolGradWithArgmax):

    %z = MaxPool(%x); %g = MaxPoolGrad(%x, %z, %dy)
 -> %z = _MaxPoolWithIndices(%x)  (outputs: the pooled values, int64 indices)
    %g = _MaxPoolGradAtIndices(%x, %z, %dy, %z:1)

The pool keeps its name and its first output, so its consumers and fetches are unchanged. Only NHWC
pools on one device, with the same window as their gradient, are rewritten; the kernels fall back to
MaxPool's and MaxPoolGrad's where they cannot use indices (ops/pool_ops.py).

A ReLU's gradient that `simplify` moved onto the pooled side (`ReluGrad(%dy, %z)`, used by the pool's
gradient alone) joins the gradient as its `relu_mask` attr, so that one pass masks and routes:

    %m = ReluGrad(%dy, %z); %g = _MaxPoolGradAtIndices(%x, %z, %m, %z:1)
 -> %g = _MaxPoolGradAtIndices(%x, %z, %dy, %z:1) {relu_mask}

The gradient of a bias added before the pool (its sum over every axis but channels) reads dy, not the
gradient: each window routes its dy to exactly one input, so both sum to the same:

    %b = SumToShape(%g, %shape) {static_shape=[C]}
 -> %b = _RoutedChannelSums(%z, %dy) {relu_mask, static_shape=[C]}
"""
from __future__ import annotations

from dataclasses import replace

from graphexec import dtypes, ir
from graphexec.compiler.util import canonical, consumers, pinned_nodes
from graphexec.ops.pool_ops import MaxPoolGradAtIndices, MaxPoolWithIndices, RoutedChannelSums

WINDOW_ATTRS = ("ksize", "strides", "padding", "data_format")


def keep_pool_indices(program: ir.Program) -> ir.Program:
    if not any(node.op == "MaxPoolGrad" for node in program.nodes):
        return program
    by_name = program.by_name()
    pools, grads = set(), {}
    for node in program.nodes:
        if node.op != "MaxPoolGrad":
            continue
        name, index = ir.split_tensor_name(canonical(node.inputs[1]))
        pool = by_name.get(name)
        if (pool is not None and pool.op == "MaxPool" and index == 0 and pool.device == node.device
                and canonical(pool.inputs[0]) == canonical(node.inputs[0])
                and pool.attrs.get("data_format", "NHWC") == "NHWC"
                and all(pool.attrs.get(k) == node.attrs.get(k) for k in WINDOW_ATTRS)):
            pools.add(name)
            grads[node.name] = replace(node, op=MaxPoolGradAtIndices.name, inputs=(*node.inputs, f"{name}:1"))
    if not grads:
        return program
    users, pinned, masks = consumers(program.nodes), pinned_nodes(program), set()
    for name, grad in grads.items():
        mask = by_name.get(ir.split_tensor_name(canonical(grad.inputs[2]))[0])
        if (mask is not None and mask.op == "ReluGrad" and canonical(mask.inputs[1]) == canonical(grad.inputs[1])
                and users.get(mask.name) == [name] and mask.name not in pinned and not mask.control_inputs
                and mask.device == grad.device and mask.outputs[0].dtype == grad.outputs[0].dtype):
            masks.add(mask.name)
            grads[name] = replace(grad, inputs=(grad.inputs[0], grad.inputs[1], mask.inputs[0], grad.inputs[3]),
                                  attrs=ir.Attrs({**grad.attrs, "relu_mask": True}))

    sums = _channel_sums(program.nodes, grads)

    def rewritten(node: ir.Node) -> ir.Node:
        if node.name in pools:
            pooled = node.outputs[0]
            return replace(node, op=MaxPoolWithIndices.name,
                           outputs=(pooled, ir.TensorType(dtypes.int64, pooled.shape)))
        return grads.get(node.name) or sums.get(node.name, node)

    return program.with_nodes([rewritten(node) for node in program.nodes if node.name not in masks])


def _channel_sums(nodes, grads: dict[str, ir.Node]) -> dict[str, ir.Node]:
    """SumToShape nodes that sum one of `grads` (rewritten pool gradients) over all but its channel axis,
    rewritten to _RoutedChannelSums of the gradient's dy."""
    out = {}
    for node in nodes:
        if node.op != "SumToShape" or not node.inputs:
            continue
        name, index = ir.split_tensor_name(canonical(node.inputs[0]))
        grad = grads.get(name)
        if grad is None or index != 0 or node.device != grad.device:
            continue
        shape, target = grad.outputs[0].shape, node.attrs["static_shape"].dims
        if (shape is None or len(shape) != 4 or None in shape or target is None
                or tuple(target) not in ((shape[3],), (1, 1, 1, shape[3]))):
            continue
        out[node.name] = replace(node, op=RoutedChannelSums.name, inputs=(grad.inputs[1], grad.inputs[2]),
                                 attrs=ir.Attrs({"relu_mask": bool(grad.attrs.get("relu_mask", False)),
                                                 "static_shape": node.attrs["static_shape"]}))
    return out
