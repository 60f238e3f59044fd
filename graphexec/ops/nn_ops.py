"""Neural-net ops with fused, numerically stable kernels: relu, softmax, log_softmax, the softmax
cross-entropies and top_k, with their gradients (convolution: conv_ops; pooling: pool_ops). The Python API that
builds these ops (and the composite ones: elu, dropout, moments...) is graphexec.nn.
"""
from __future__ import annotations

import collections

import numpy as np

from graphexec import dtypes
from graphexec.framework import Tensor, apply_op, name_scope
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.emit import emit
from graphexec.ops.reduction_ops import largest, summed
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.ops.shape_inputs import check_index_dtype, dim_of, scalar_value, shape_of
from graphexec.runtime import compiled

# The public API (graphexec/nn.py star-imports it as tf.nn.<name>).
__all__ = ["top_k", "in_top_k", "local_response_normalization", "lrn"]

FLOAT = rules.same_dtype(*dtypes.FLOATING)


def _keep_last(t):
    return emit("ExpandDims", t, axis=-1)


# -- Relu ------------------------------------------------------------------------------------------------
# Compiled loops (runtime/compiled.py) where they apply (compiled.loop_for): numpy's float maximum (which
# passes NaN through) ran ~2.5x slower than a plain loop, and `dy * (z > 0)` makes a bool array and
# multiplies across types (Zen 4, one thread: relu of 3.2M float32 1.22 -> 0.51 ms, its gradient 1.73 ->
# 0.80; W3 in process ~20 us a step). Each computes what its numpy expression does, bit for bit: maximum
# keeps x where x > 0 or x is NaN (so -0.0 gives 0.0), and the gradient multiplies dy by 1 or 0 (so NaN and
# inf times 0 give NaN).


def _relu_loop(out, x, zero):
    for i in range(x.size):
        v = x[i]
        out[i] = v if v > zero or v != v else zero


def _relu_grad_loop(out, dy, z, zero, one):
    for i in range(dy.size):
        out[i] = dy[i] * (one if z[i] > zero else zero)


RELU = compiled.Loop(_relu_loop, compiled.elementwise(outputs=1, inputs=1, scalars=1))
RELU_GRAD = compiled.Loop(_relu_grad_loop, compiled.elementwise(outputs=1, inputs=2, scalars=2))


def _relu(ctx, x):
    kernel = compiled.loop_for(RELU, x)
    if kernel is None:
        return ctx.xp.maximum(x, x.dtype.type(0))
    out = np.empty_like(x)
    kernel(out.reshape(-1), compiled.read_only(x.reshape(-1)), x.dtype.type(0))
    return out


def _relu_grad_kernel(ctx, dy, z):
    kernel = compiled.loop_for(RELU_GRAD, dy, z)
    if kernel is None:
        return dy * (z > 0)
    out = np.empty_like(dy)
    kernel(out.reshape(-1), compiled.read_only(dy.reshape(-1)), compiled.read_only(z.reshape(-1)),
           dy.dtype.type(0), dy.dtype.type(1))
    return out


def relu_grad(dy, z):
    return apply_op("ReluGrad", (dy, z), {}, "ReluGrad").outputs[0]


Relu = op("Relu", shape=rules.unchanged, dtype=rules.same_dtype(*dtypes.NUMERIC), kernel=_relu, elementwise=True,
          grad=lambda op, dy: [relu_grad(dy, op.outputs[0])], inputs=("features",))
ReluGrad = op("ReluGrad", shape=rules.broadcast, dtype=FLOAT, kernel=_relu_grad_kernel, elementwise=True,
              grad=lambda op, ddy: [relu_grad(ddy, op.inputs[1]), None], inputs=("gradients", "features"))


# -- Softmax, LogSoftmax ------------------------------------------------------------------------------------
def _class_axis(args, attrs):
    rules.normalize_axis(attrs["axis"], args[0].rank, "axis")
    if args[0].rank == 0:
        raise ShapeError("logits must have at least one dimension")
    return args[0].shape


def _softmax(ctx, x, axis):
    xp = ctx.xp
    e = xp.exp(x - largest(xp, x, axis, keepdims=True))
    e /= summed(xp, e, axis, keepdims=True)
    return e


def _log_softmax(ctx, x, axis):
    xp = ctx.xp
    shifted = x - largest(xp, x, axis, keepdims=True)
    return shifted - xp.log(summed(xp, xp.exp(shifted), axis, keepdims=True))


def _softmax_grad(op, dy):
    z, axis = op.outputs[0], (op.attrs["axis"],)
    return [emit("Mul", emit("Sub", dy, emit("Sum", emit("Mul", dy, z), axis=axis, keepdims=True)), z)]


def _log_softmax_grad(op, dy):
    z, axis = op.outputs[0], (op.attrs["axis"],)
    return [emit("Sub", dy, emit("Mul", emit("Exp", z), emit("Sum", dy, axis=axis, keepdims=True)))]


_CLASS_AXIS = {"axis": attr("int", -1)}
Softmax = op("Softmax", shape=_class_axis, dtype=FLOAT, kernel=_softmax, grad=_softmax_grad, inputs=("logits",),
             attrs=_CLASS_AXIS)
LogSoftmax = op("LogSoftmax", shape=_class_axis, dtype=FLOAT, kernel=_log_softmax, grad=_log_softmax_grad,
                inputs=("logits",), attrs=_CLASS_AXIS)


# -- cross-entropies: (loss per example, d loss / d logits), as TF's ops --------------------------------------
def _xent_shapes(args, attrs):
    logits, labels = args
    if logits.rank == 0:
        raise ShapeError("logits must have at least one dimension (the classes)")
    shape = rules.broadcast_shapes(logits.shape, labels.shape)
    if logits.shape is not None and labels.shape is not None and logits.shape != shape:
        raise ShapeError(f"logits and labels must have the same shape, got {rules.fmt(logits.shape)} and "
                         f"{rules.fmt(labels.shape)}")
    return [None if shape is None else shape[:-1], shape]


def _softmax_xent(ctx, logits, labels):
    xp = ctx.xp
    log_probs = _log_softmax(ctx, logits, -1)
    loss = -summed(xp, labels * log_probs, -1)
    return loss, xp.exp(log_probs) - labels


def _first_order_only(op, dbackprop) -> None:
    """The xent ops' second output (the backprop) is for the first derivative only, as in TF."""
    if dbackprop is not None:
        raise NotImplementedError(f"second derivatives of {op.type} '{op.name}' are not supported")


def _softmax_xent_grad(op, dloss, dbackprop):
    _first_order_only(op, dbackprop)
    logits = op.inputs[0]
    dlogits = emit("Mul", _keep_last(dloss), op.outputs[1])
    dlabels = emit("Mul", _keep_last(dloss), emit("Neg", emit("LogSoftmax", logits, axis=-1)))
    return [dlogits, dlabels]


SoftmaxCrossEntropyWithLogits = op(
    "SoftmaxCrossEntropyWithLogits", shape=_xent_shapes, kernel=_softmax_xent, grad=_softmax_xent_grad,
    dtype=lambda args, attrs: [FLOAT(args, attrs)] * 2, inputs=("features", "labels"))


def _sparse_xent_shapes(args, attrs):
    logits, labels = args
    if labels.dtype not in (dtypes.int32, dtypes.int64):
        raise ShapeError(f"labels must be int32 or int64, got {labels.dtype.name}")
    if logits.shape is None or labels.shape is None:
        return [None if labels.shape is None else labels.shape, logits.shape]
    if len(logits.shape) != len(labels.shape) + 1 or rules.broadcast_shapes(logits.shape[:-1], labels.shape) is None:
        raise ShapeError(f"labels of shape {rules.fmt(labels.shape)} must have one dimension less than logits "
                         f"{rules.fmt(logits.shape)}")
    batch = tuple(a if a is not None else b for a, b in zip(logits.shape[:-1], labels.shape))
    return [batch, batch + logits.shape[-1:]]


def _sparse_xent(ctx, logits, labels):
    xp = ctx.xp
    classes = logits.shape[-1]
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise ValueError(f"Received a label value of {bad} which is outside the valid range of [0, {classes}).")
    log_probs = _log_softmax(ctx, logits, -1)
    hot = labels[..., None] == xp.arange(classes, dtype=labels.dtype)
    loss = -xp.sum(xp.where(hot, log_probs, log_probs.dtype.type(0)), axis=-1)
    return loss, xp.exp(log_probs) - hot


def _sparse_xent_grad(op, dloss, dbackprop):
    _first_order_only(op, dbackprop)
    return [emit("Mul", _keep_last(dloss), op.outputs[1]), None]


SparseSoftmaxCrossEntropyWithLogits = op(
    "SparseSoftmaxCrossEntropyWithLogits", shape=_sparse_xent_shapes, kernel=_sparse_xent, grad=_sparse_xent_grad,
    dtype=lambda args, attrs: [FLOAT(args[:1], attrs)] * 2, inputs=("features", "labels"))


# -- TopKV2 -------------------------------------------------------------------------------------------------------
def _top_k_shapes(args, attrs):
    x, k_arg = args
    check_index_dtype(k_arg, "k")
    k = scalar_value(k_arg, "k")
    if k is not None and k < 0:
        raise ShapeError(f"k must be non-negative, got {k}")
    if x.shape is None:
        return [None, None]
    if not x.shape:
        raise ShapeError("input must have at least one dimension (top_k picks along the last)")
    if k is not None and x.shape[-1] is not None and k > x.shape[-1]:
        raise ShapeError(f"input must have at least k={k} columns, got {x.shape[-1]}")
    return [x.shape[:-1] + (k,)] * 2


def _top_k(ctx, x, k, sorted):  # noqa: A002 - TF's attr name; the result is sorted either way
    """The k largest along the last axis, largest first; among equal values the lower index first (as TF)."""
    xp = ctx.xp
    k, n = int(k), x.shape[-1]
    if not 0 <= k <= n:
        raise ValueError(f"input must have at least k={k} columns, got {n}")
    # a stable ascending sort of the reversed rows, read backwards: descending, equal values by ascending index
    ascending = xp.argsort(xp.flip(x, -1), axis=-1, kind="stable")
    order = (n - 1) - xp.flip(ascending, -1)[..., :k]
    return xp.take_along_axis(x, order, axis=-1), order.astype(np.int32)


def _vector(*items):
    """An int32 vector of Python ints and int32 scalars (a constant when every item is known)."""
    if all(isinstance(i, int) for i in items):
        return np.asarray(items, np.int32)
    return emit("Pack", *items, axis=0)


def _top_k_grad(op, dvalues, dindices):
    """dvalues added back where the values came from: one segment sum over the flattened input, each row's
    indices offset by the row's start (as TF)."""
    if dvalues is None:
        return [None, None]
    x, indices = op.inputs[0], op.outputs[1]
    n, k = dim_of(x, -1), dim_of(indices, -1)
    total = emit("Size", x, out_type=dtypes.int32)
    starts = emit("Range", 0, total, max(n, 1) if isinstance(n, int) else emit("Maximum", n, 1))
    rows = emit("Reshape", indices, _vector(emit("Size", starts, out_type=dtypes.int32), k))
    positions = emit("Reshape", emit("Add", rows, emit("ExpandDims", starts, axis=-1)), [-1])
    summed = emit("UnsortedSegmentSum", emit("Reshape", dvalues, [-1]), positions, total)
    return [emit("Reshape", summed, shape_of(x)), None]


TopKV2 = op("TopKV2", shape=_top_k_shapes, kernel=_top_k, grad=_top_k_grad, inputs=("input", "k"),
            attrs={"sorted": attr("bool", True)},
            dtype=lambda args, attrs: [rules.same_dtype(*dtypes.NUMERIC)(args[:1], attrs), dtypes.int32])
TopK = collections.namedtuple("TopKV2", ["values", "indices"])


def top_k(input, k=1, sorted=True, name=None):  # noqa: A002 - TF's names
    """tf.nn.top_k: the k largest entries of the last axis and their int32 indices, largest first."""
    x = convert_to_tensor(input)
    with name_scope(name, "TopKV2") as scope:
        k = k if isinstance(k, Tensor) else convert_to_tensor(k, dtype=dtypes.int32, name="k")
        return TopK(*apply_op("TopKV2", (x, k), {"sorted": bool(sorted)}, scope).outputs)


# -- InTopKV2 -----------------------------------------------------------------------------------------------------
def _in_top_k_shape(args, attrs):
    predictions, targets, k = args
    check_index_dtype(targets, "targets")
    check_index_dtype(k, "k")
    if predictions.dtype is not dtypes.float32:
        raise ShapeError(f"predictions must be float32, got {predictions.dtype.name}")
    if predictions.rank not in (None, 2) or targets.rank not in (None, 1):
        raise ShapeError(f"predictions must be a matrix and targets a vector, got shapes "
                         f"{rules.fmt(predictions.shape)} and {rules.fmt(targets.shape)}")
    batch = rules.broadcast_shapes(predictions.shape[:1] if predictions.shape else None, targets.shape)
    if predictions.shape and targets.shape and batch is None:
        raise ShapeError(f"predictions {rules.fmt(predictions.shape)} and targets {rules.fmt(targets.shape)} must "
                         f"have the same batch size")
    return batch if batch is not None else (targets.shape or (predictions.shape[:1] if predictions.shape else None))


def _in_top_k(ctx, predictions, targets, k):
    """targets[i] is among the k largest of predictions[i]: fewer than k values are larger (so ties at the
    boundary are all in). As TF, a row with a non-finite prediction or an out-of-range target is False."""
    xp = ctx.xp
    classes = predictions.shape[1]
    in_range = (targets >= 0) & (targets < classes)
    picked = xp.where(in_range, targets, 0).astype(np.int64)[:, None]
    target = xp.take_along_axis(predictions, picked, axis=1)
    larger = xp.sum(predictions > target, axis=1)
    return (larger < int(k)) & in_range & xp.all(xp.isfinite(predictions), axis=1)


InTopKV2 = op("InTopKV2", shape=_in_top_k_shape, dtype=lambda args, attrs: dtypes.bool, kernel=_in_top_k,
              grad=NOT_DIFFERENTIABLE, inputs=("predictions", "targets", "k"))


def in_top_k(predictions, targets, k, name=None):
    """tf.nn.in_top_k: bool [batch], whether each target class is among the k highest predictions."""
    predictions, targets = convert_to_tensor(predictions), convert_to_tensor(targets)
    with name_scope(name, "in_top_k") as scope:
        k = k if isinstance(k, Tensor) else convert_to_tensor(k, dtype=targets.dtype, name="k")
        return apply_op("InTopKV2", (predictions, targets, k), {}, scope).outputs[0]


# -- LRN (local response normalization over the channels of NHWC input) -------------------------------------------
_LRN_ATTRS = {"depth_radius": attr("int", 5), "bias": attr("float", 1.0), "alpha": attr("float", 1.0),
              "beta": attr("float", 0.5)}


def _window_sum(xp, x, radius):
    """sum of x[..., c - radius : c + radius + 1] for each channel c (a difference of cumulative sums)."""
    channels = x.shape[-1]
    padded = xp.concatenate([xp.zeros(x.shape[:-1] + (1,), x.dtype), xp.cumsum(x, axis=-1)], axis=-1)
    upper = xp.minimum(xp.arange(channels) + radius + 1, channels)
    lower = xp.maximum(xp.arange(channels) - radius, 0)
    return padded[..., upper] - padded[..., lower]


def _lrn(ctx, x, depth_radius, bias, alpha, beta):
    scale = bias + alpha * _window_sum(ctx.xp, x * x, depth_radius)
    return x * scale ** -beta


def _lrn_grad_kernel(ctx, dy, x, y, depth_radius, bias, alpha, beta):
    """d/dx_c of sum_j dy_j x_j s_j^-beta, s_j = bias + alpha * sum over j's window of x^2:
    dy_c s_c^-beta - 2 alpha beta x_c * sum over c's window of dy_j y_j / s_j."""
    scale = bias + alpha * _window_sum(ctx.xp, x * x, depth_radius)
    return dy * scale ** -beta - 2 * alpha * beta * x * _window_sum(ctx.xp, dy * y / scale, depth_radius)


def _lrn_shape(args, attrs):
    if args[0].rank not in (None, 4):
        raise ShapeError(f"input must be 4-D (NHWC), got {rules.fmt(args[0].shape)}")
    return args[0].shape


LRN = op("LRN", shape=_lrn_shape, dtype=FLOAT, kernel=_lrn, inputs=("input",), attrs=_LRN_ATTRS,
         grad=lambda op, dy: [emit("LRNGrad", dy, op.inputs[0], op.outputs[0], **op.attrs)])
LRNGrad = op("LRNGrad", shape=lambda args, attrs: args[1].shape, dtype=FLOAT, kernel=_lrn_grad_kernel,
             grad=NOT_DIFFERENTIABLE, inputs=("input_grads", "input_image", "output_image"), attrs=_LRN_ATTRS)


def local_response_normalization(input, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, name=None):  # noqa: A002
    """tf.nn.lrn: input / (bias + alpha * sum of squares over 2 * depth_radius + 1 channels) ** beta."""
    attrs = {"depth_radius": int(depth_radius), "bias": float(bias), "alpha": float(alpha), "beta": float(beta)}
    return apply_op("LRN", (convert_to_tensor(input),), attrs, name or "LRN").outputs[0]


lrn = local_response_normalization
