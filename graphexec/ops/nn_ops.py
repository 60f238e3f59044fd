"""Neural-net ops with fused, numerically stable kernels: relu, softmax, log_softmax, the softmax
cross-entropies, 2-D convolution and pooling (NHWC), top_k, with their gradients.

Convolution is im2col + one matmul: the loops run over the kernel's few offsets (3x3 = 9), never over
pixels, and every kernel uses `ctx.xp`, so the CuPy backend runs the same code. The Python API that
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
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.ops.shape_inputs import check_index_dtype, dim_of, host_ints, scalar_value, shape_of

FLOAT = rules.same_dtype(*dtypes.FLOATING)


def _keep_last(t):
    return emit("ExpandDims", t, axis=-1)


# -- Relu ------------------------------------------------------------------------------------------------
def _relu(ctx, x):
    return ctx.xp.maximum(x, x.dtype.type(0))


def _relu_grad_kernel(ctx, dy, z):
    return dy * (z > 0)


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
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    e /= xp.sum(e, axis=axis, keepdims=True)
    return e


def _log_softmax(ctx, x, axis):
    xp = ctx.xp
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


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
    loss = -xp.sum(labels * log_probs, axis=-1)
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


# -- window geometry shared by convolution and pooling (NHWC) ---------------------------------------------------
def out_size(size, window, stride, padding):
    """Output length of one spatial dim, and the padding before it (TF's SAME puts the extra after)."""
    if size is None:
        return None, None
    if padding == "VALID":
        return (size - window) // stride + 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2


def _check_window_attrs(attrs, what="strides"):
    if attrs["padding"] not in ("SAME", "VALID"):
        raise ShapeError(f"padding must be SAME or VALID, got {attrs['padding']!r}")
    if attrs.get("data_format", "NHWC") != "NHWC":
        raise ShapeError(f"only the NHWC data format is supported, got {attrs['data_format']}")
    strides = attrs["strides"]
    if len(strides) != 4 or strides[0] != 1 or strides[3] != 1 or min(strides) < 1:
        raise ShapeError(f"{what} must be [1, stride_h, stride_w, 1], got {list(strides)}")


def _windows(xp, padded, kh, kw, sh, sw, oh, ow):
    """Yield (i, j, view): the input element at offset (i, j) of every output position's window."""
    for i in range(kh):
        for j in range(kw):
            yield i, j, padded[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]


def _geometry(shape, kh, kw, strides, padding):
    _, h, w, _ = shape
    oh, top = out_size(h, kh, strides[1], padding)
    ow, left = out_size(w, kw, strides[2], padding)
    if oh < 1 or ow < 1:
        raise ValueError(f"the {kh}x{kw} window does not fit the {h}x{w} input with {padding} padding")
    pad_h = max((oh - 1) * strides[1] + kh - h, 0)
    pad_w = max((ow - 1) * strides[2] + kw - w, 0)
    return oh, ow, ((0, 0), (top, pad_h - top), (left, pad_w - left), (0, 0))


def _pad(xp, x, pads, value=0):
    if not any(b or a for b, a in pads):
        return x
    return xp.pad(x, pads, mode="constant", constant_values=value)


def _crop(x, pads, shape):
    _, (top, _), (left, _), _ = pads
    return x[:, top:top + shape[1], left:left + shape[2], :]


# -- Conv2D and its two backprops ------------------------------------------------------------------------------
def _im2col(ctx, x, kh, kw, strides, padding):
    xp = ctx.xp
    oh, ow, pads = _geometry(x.shape, kh, kw, strides, padding)
    padded = _pad(xp, x, pads)
    cols = xp.empty((x.shape[0], oh, ow, kh, kw, x.shape[3]), dtype=x.dtype)
    for i, j, view in _windows(xp, padded, kh, kw, strides[1], strides[2], oh, ow):
        cols[:, :, :, i, j, :] = view
    return cols.reshape(-1, kh * kw * x.shape[3]), oh, ow


def _col2im(ctx, cols, shape, kh, kw, strides, padding):
    """The adjoint of _im2col: every column entry added back to the input position it came from."""
    xp = ctx.xp
    oh, ow, pads = _geometry(shape, kh, kw, strides, padding)
    n, h, w, c = shape
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    padded = xp.zeros((n, h + pads[1][0] + pads[1][1], w + pads[2][0] + pads[2][1], c), dtype=cols.dtype)
    for i, j, view in _windows(xp, padded, kh, kw, strides[1], strides[2], oh, ow):
        view += cols[:, :, :, i, j, :]
    return _crop(padded, pads, shape)


def _conv2d(ctx, x, w, strides, padding, data_format="NHWC"):
    kh, kw, c, o = w.shape
    if x.shape[3] != c:
        raise ValueError(f"input depth {x.shape[3]} does not match the filter's input depth {c}")
    cols, oh, ow = _im2col(ctx, x, kh, kw, strides, padding)
    return (cols @ w.reshape(-1, o)).reshape(x.shape[0], oh, ow, o)


def _conv_backprop_input(ctx, input_sizes, w, dy, strides, padding, data_format="NHWC"):
    kh, kw, _, o = w.shape
    cols = dy.reshape(-1, o) @ w.reshape(-1, o).T
    return _col2im(ctx, cols, host_ints(ctx, input_sizes), kh, kw, strides, padding)


def _conv_backprop_filter(ctx, x, filter_sizes, dy, strides, padding, data_format="NHWC"):
    kh, kw, c, o = host_ints(ctx, filter_sizes)
    cols, _, _ = _im2col(ctx, x, kh, kw, strides, padding)
    return (cols.T @ dy.reshape(-1, o)).reshape(kh, kw, c, o)


def _conv_out_shape(x_shape, w_shape, attrs):
    if x_shape is None:
        return None
    if len(x_shape) != 4:
        raise ShapeError(f"input must be rank 4 (NHWC), got shape {rules.fmt(x_shape)}")
    if w_shape is None:
        return (x_shape[0], None, None, None)
    if len(w_shape) != 4:
        raise ShapeError(f"filter must be rank 4 [height, width, in_channels, out_channels], got "
                         f"{rules.fmt(w_shape)}")
    if None not in (x_shape[3], w_shape[2]) and x_shape[3] != w_shape[2]:
        raise ShapeError(f"input depth {x_shape[3]} must match the filter's in_channels {w_shape[2]}")
    _, sh, sw, _ = attrs["strides"]
    oh = out_size(x_shape[1], w_shape[0], sh, attrs["padding"])[0] if w_shape[0] is not None else None
    ow = out_size(x_shape[2], w_shape[1], sw, attrs["padding"])[0] if w_shape[1] is not None else None
    if (oh is not None and oh < 1) or (ow is not None and ow < 1):
        raise ShapeError(f"the filter {rules.fmt(w_shape)} does not fit the input {rules.fmt(x_shape)} with "
                         f"VALID padding")
    return (x_shape[0], oh, ow, w_shape[3])


def _conv_shape(args, attrs):
    _check_window_attrs(attrs)
    return _conv_out_shape(args[0].shape, args[1].shape, attrs)


def _sizes_shape(arg):
    if arg.value is not None:
        return tuple(int(d) for d in arg.value)
    return (None,) * 4


def _conv_backprop_input_shape(args, attrs):
    _check_window_attrs(attrs)
    return _sizes_shape(args[0])


def _conv_backprop_filter_shape(args, attrs):
    _check_window_attrs(attrs)
    return _sizes_shape(args[1])


def _conv_attrs(op):
    return {k: op.attrs[k] for k in ("strides", "padding", "data_format")}


def conv2d_backprop_input(input_sizes, w, dy, attrs):
    return apply_op("Conv2DBackpropInput", (input_sizes, w, dy), attrs, "Conv2DBackpropInput").outputs[0]


def conv2d_backprop_filter(x, filter_sizes, dy, attrs):
    return apply_op("Conv2DBackpropFilter", (x, filter_sizes, dy), attrs, "Conv2DBackpropFilter").outputs[0]


def _conv_grad(op, dy):
    x, w = op.inputs
    attrs = _conv_attrs(op)
    return [conv2d_backprop_input(shape_of(x), w, dy, attrs), conv2d_backprop_filter(x, shape_of(w), dy, attrs)]


def _conv_backprop_input_grad(op, g):
    """The op is linear in the filter and in dy: its adjoints are the other conv ops."""
    sizes, w, dy = op.inputs
    attrs = _conv_attrs(op)
    return [None, conv2d_backprop_filter(g, shape_of(w), dy, attrs),
            apply_op("Conv2D", (g, w), attrs, "Conv2D").outputs[0]]


def _conv_backprop_filter_grad(op, g):
    x, sizes, dy = op.inputs
    attrs = _conv_attrs(op)
    return [conv2d_backprop_input(shape_of(x), g, dy, attrs), None,
            apply_op("Conv2D", (x, g), attrs, "Conv2D").outputs[0]]


_CONV_ATTRS = {"strides": attr("list(int)"), "padding": attr("string"), "data_format": attr("string", "NHWC")}
Conv2D = op("Conv2D", shape=_conv_shape, dtype=FLOAT, kernel=_conv2d, grad=_conv_grad, inputs=("input", "filter"),
            attrs=_CONV_ATTRS)
Conv2DBackpropInput = op("Conv2DBackpropInput", shape=_conv_backprop_input_shape,
                         dtype=lambda args, attrs: FLOAT(args[1:], attrs), kernel=_conv_backprop_input,
                         grad=_conv_backprop_input_grad, inputs=("input_sizes", "filter", "out_backprop"),
                         attrs=_CONV_ATTRS)
Conv2DBackpropFilter = op("Conv2DBackpropFilter", shape=_conv_backprop_filter_shape,
                          dtype=lambda args, attrs: FLOAT(args[::2], attrs), kernel=_conv_backprop_filter,
                          grad=_conv_backprop_filter_grad, inputs=("input", "filter_sizes", "out_backprop"),
                          attrs=_CONV_ATTRS)


# -- MaxPool, AvgPool ---------------------------------------------------------------------------------------------
def _pool_shape(args, attrs):
    _check_window_attrs(attrs)
    _check_window_attrs({**attrs, "strides": attrs["ksize"]}, "ksize")
    x = args[0].shape
    if x is None:
        return None
    if len(x) != 4:
        raise ShapeError(f"input must be rank 4 (NHWC), got shape {rules.fmt(x)}")
    _, kh, kw, _ = attrs["ksize"]
    return _conv_out_shape(x, (kh, kw, x[3], x[3]), attrs)


def _max_pool(ctx, x, ksize, strides, padding, data_format="NHWC"):
    xp = ctx.xp
    _, kh, kw, _ = ksize
    oh, ow, pads = _geometry(x.shape, kh, kw, strides, padding)
    padded = _pad(xp, x, pads, -np.inf)
    out = None
    for _, _, view in _windows(xp, padded, kh, kw, strides[1], strides[2], oh, ow):
        out = view.copy() if out is None else xp.maximum(out, view, out=out)
    return out


def _max_pool_grad_kernel(ctx, x, z, dy, ksize, strides, padding, data_format="NHWC"):
    """dy routed to the first element of each window that attains the max (as TF's MaxPoolGrad)."""
    xp = ctx.xp
    _, kh, kw, _ = ksize
    oh, ow, pads = _geometry(x.shape, kh, kw, strides, padding)
    padded = _pad(xp, x, pads, -np.inf)
    grad = xp.zeros(padded.shape, dtype=dy.dtype)
    taken = xp.zeros(z.shape, dtype=bool)
    grad_views = _windows(xp, grad, kh, kw, strides[1], strides[2], oh, ow)
    for (_, _, view), (_, _, target) in zip(_windows(xp, padded, kh, kw, strides[1], strides[2], oh, ow), grad_views):
        hit = (view == z) & ~taken
        target += xp.where(hit, dy, dy.dtype.type(0))
        taken |= hit
    return _crop(grad, pads, x.shape)


def _pool_attrs(op):
    return {k: op.attrs[k] for k in ("ksize", "strides", "padding", "data_format")}


_POOL_ATTRS = {"ksize": attr("list(int)"), **_CONV_ATTRS}
MaxPool = op("MaxPool", shape=_pool_shape, dtype=FLOAT, kernel=_max_pool, inputs=("input",), attrs=_POOL_ATTRS,
             grad=lambda op, dy: [apply_op("MaxPoolGrad", (op.inputs[0], op.outputs[0], dy), _pool_attrs(op),
                                           "MaxPoolGrad").outputs[0]])
MaxPoolGrad = op("MaxPoolGrad", shape=lambda args, attrs: args[0].shape, dtype=FLOAT, kernel=_max_pool_grad_kernel,
                 grad=NOT_DIFFERENTIABLE, inputs=("orig_input", "orig_output", "grad"), attrs=_POOL_ATTRS)


def _window_counts(xp, shape, kh, kw, strides, padding, dtype):
    """How many real (unpadded) inputs each output's window covers: SAME averages exclude padding."""
    oh, ow, pads = _geometry(shape, kh, kw, strides, padding)
    ones = _pad(xp, xp.ones((1, shape[1], shape[2], 1), dtype=dtype), pads)
    counts = xp.zeros((1, oh, ow, 1), dtype=dtype)
    for _, _, view in _windows(xp, ones, kh, kw, strides[1], strides[2], oh, ow):
        counts += view
    return counts


def _avg_pool(ctx, x, ksize, strides, padding, data_format="NHWC"):
    xp = ctx.xp
    _, kh, kw, _ = ksize
    oh, ow, pads = _geometry(x.shape, kh, kw, strides, padding)
    padded = _pad(xp, x, pads)
    total = xp.zeros((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    for _, _, view in _windows(xp, padded, kh, kw, strides[1], strides[2], oh, ow):
        total += view
    total /= _window_counts(xp, x.shape, kh, kw, strides, padding, x.dtype)
    return total


def _avg_pool_grad_kernel(ctx, input_sizes, dy, ksize, strides, padding, data_format="NHWC"):
    xp = ctx.xp
    _, kh, kw, _ = ksize
    shape = host_ints(ctx, input_sizes)
    oh, ow, pads = _geometry(shape, kh, kw, strides, padding)
    share = dy / _window_counts(xp, shape, kh, kw, strides, padding, dy.dtype)
    grad = xp.zeros((shape[0], shape[1] + pads[1][0] + pads[1][1], shape[2] + pads[2][0] + pads[2][1], shape[3]),
                    dtype=dy.dtype)
    for _, _, view in _windows(xp, grad, kh, kw, strides[1], strides[2], oh, ow):
        view += share
    return _crop(grad, pads, shape)


def _avg_pool_grad_shape(args, attrs):
    return _sizes_shape(args[0])


AvgPool = op("AvgPool", shape=_pool_shape, dtype=FLOAT, kernel=_avg_pool, inputs=("value",), attrs=_POOL_ATTRS,
             grad=lambda op, dy: [apply_op("AvgPoolGrad", (shape_of(op.inputs[0]), dy), _pool_attrs(op),
                                           "AvgPoolGrad").outputs[0]])
AvgPoolGrad = op("AvgPoolGrad", shape=_avg_pool_grad_shape, dtype=lambda args, attrs: FLOAT(args[1:], attrs),
                 kernel=_avg_pool_grad_kernel, inputs=("orig_input_shape", "grad"), attrs=_POOL_ATTRS,
                 grad=lambda op, g: [None, apply_op("AvgPool", (g,), _pool_attrs(op), "AvgPool").outputs[0]])


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
