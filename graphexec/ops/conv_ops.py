"""2-D convolution and pooling (NHWC) with their gradients.

Convolution is im2col + matmul, a few images at a time: the columns of a chunk are copied once from a
strided view of the windows into the thread's scratch buffer and multiplied by the filter; the loops
run over chunks and the kernel's few offsets (5x5 = 25), never over pixels. Chunks run on the
intra-op threads (graphexec.runtime.intra_op), each with its own scratch buffer. Every kernel uses `ctx.xp`,
so the CuPy backend runs the same code. With torch installed, float32 convolutions, their gradients and
max-pooling with its gradient on the host go to torch's kernels instead (graphexec.runtime.conv_library), by fixed slices
of the batch on the same threads. The Python API that builds these ops is graphexec.nn.
"""
from __future__ import annotations

import math

import numpy as np

from graphexec import dtypes
from graphexec.framework import apply_op
from graphexec.ops import interruptible, nn_ops, rules, workspace
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.ops.shape_inputs import host_ints, shape_of
from graphexec.runtime import compiled, conv_library, intra_op

FLOAT = rules.same_dtype(*dtypes.FLOATING)


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
# The batch is processed in chunks whose im2col columns take about this much memory: they stay in the
# cache between being written and being multiplied, live in the thread's reused scratch buffer, and
# a cancelled or expired run stops between two chunks.
CHUNK_BYTES = 4 << 20
POOL_CHUNK_ELEMENTS = 1 << 18  # pooling's chunks of images, on the intra-op threads
FEW_CHANNELS = 8  # inputs with fewer channels get transposed im2col columns (see _columns)


def _patches(xp, padded, kh, kw, sh, sw, oh, ow):
    """A view [n, oh, ow, kh, kw, c] of every output position's window of `padded` (no copy)."""
    n, _, _, c = padded.shape
    sn, sy, sx, sc = padded.strides
    return xp.lib.stride_tricks.as_strided(padded, (n, oh, ow, kh, kw, c), (sn, sy * sh, sx * sw, sy, sx, sc))


def _chunks(n, row_bytes):
    """(start, stop) ranges over the batch, each chunk's columns about CHUNK_BYTES."""
    per = max(1, min(n, CHUNK_BYTES // max(row_bytes, 1)))
    return [(start, min(start + per, n)) for start in range(0, n, per)]


def _columns(ctx, patches, start, stop):
    """The im2col matrix [pixels, kh * kw * c] of images start:stop, copied once into the thread's scratch
    buffer. With few input channels it is stored transposed (and returned as a transposed view): the
    copy then moves runs of a row's pixels instead of c values at a time (c = 1, W10's conv1: one float)."""
    _, oh, ow, kh, kw, c = patches.shape
    images = stop - start
    if c >= FEW_CHANNELS:
        cols = workspace.scratch(ctx.xp, (images * oh * ow, kh * kw * c), patches.dtype)
        cols.reshape(images, oh, ow, kh, kw, c)[...] = patches[start:stop]
        return cols
    cols = workspace.scratch(ctx.xp, (kh * kw * c, images * oh * ow), patches.dtype)
    cols.reshape(kh, kw, c, images, oh, ow)[...] = patches[start:stop].transpose(3, 4, 5, 0, 1, 2)
    return cols.T


def _pointwise(kh, kw, strides):
    """A 1x1 stride-1 convolution is one product of the input's rows with the filter: no im2col."""
    return kh == kw == 1 and strides[1] == strides[2] == 1


def _conv2d(ctx, x, w, strides, padding, data_format="NHWC"):
    return _convolve(ctx, x, w, strides, padding)


class _Epilogue:
    """What the ops fused after a convolution make of its result (+ bias, then Relu or nothing), applied
    to each chunk while it is in the cache: `epilogue(xp, result, into)` writes into `into` (which may be
    `result`). conv_library takes `bias` and `relu` into its own call instead."""

    def __init__(self, bias=None, relu=False):
        self.bias, self.relu = bias, relu

    def __call__(self, xp, result, into):
        if self.bias is not None:
            xp.add(result, self.bias, out=into)
        elif into is not result:
            into[...] = result
        if self.relu:
            xp.maximum(into, 0, out=into)


_NO_EPILOGUE = _Epilogue()


def _convolve(ctx, x, w, strides, padding, finish=_NO_EPILOGUE):
    """The convolution, each chunk finished by `finish` (an _Epilogue)."""
    xp = ctx.xp
    kh, kw, c, o = w.shape
    if x.shape[3] != c:
        raise ValueError(f"input depth {x.shape[3]} does not match the filter's input depth {c}")
    n = x.shape[0]
    oh, ow, pads = _geometry(x.shape, kh, kw, strides, padding)
    w2 = w.reshape(-1, o)
    if _pointwise(kh, kw, strides):
        out = interruptible.matmul(ctx, xp.ascontiguousarray(x).reshape(-1, c), w2).reshape(n, oh, ow, o)
        finish(xp, out, out)
        return out
    out = xp.empty((n, oh, ow, o), dtype=xp.result_type(x, w))
    if out.size == 0 or w2.shape[0] == 0:
        out[...] = 0
        finish(xp, out, out)
        return out
    if conv_library.usable(xp, x, w):
        # One call over the whole batch where it may be one (interruptible.library_threads): its OpenMP
        # threads write the result where it stays, where slices' results are copied into one array (W10's
        # conv1, 12.8 MB: its traced forward 1.69 against 3.0 ms; conv2's 11.3 against 12.5; Zen 4, 2
        # threads; TF's own 1.66 and 10.2). Each output is one thread's sum, so the bits do not depend on
        # the thread count (tested); slices may differ in the last bits (oneDNN may pick its kernel by the
        # batch it is given), so a convolution past the block limit of a stoppable run can give other last
        # bits than in a run without a deadline. The same for the input gradient below.
        threads = interruptible.library_threads(ctx, out.size * w2.shape[0])
        if threads:
            # (contiguous as the slices' array would be: torch may lay out an odd shape's result otherwise)
            return np.ascontiguousarray(conv_library.forward(x, w, strides, pads, finish.bias, finish.relu,
                                                             threads=threads))

        def library_slice(s):
            out[s] = conv_library.forward(x[s], w, strides, pads, finish.bias, finish.relu)

        _on_library_slices(ctx, n, out.size * w2.shape[0], library_slice)
        return out
    patches = _patches(xp, _pad(xp, x, pads), kh, kw, strides[1], strides[2], oh, ow)
    chunks = _chunks(n, oh * ow * kh * kw * c * x.itemsize)

    def chunk(part):
        start, stop = chunks[part]
        ctx.check_interrupt()
        into = out[start:stop]
        interruptible.matmul(ctx, _columns(ctx, patches, start, stop), w2, out=into.reshape(-1, o))
        finish(xp, into, into)

    intra_op.run(len(chunks), chunk, intra_op.ways(out.size * w2.shape[0]))
    return out


def _fused_conv2d(ctx, x, w, bias, strides, padding, data_format="NHWC", activation="", covers=()):
    """Conv2D, then + bias, then the activation (Relu or none), each chunk finished while in the cache."""
    if bias.shape != (w.shape[3],):
        raise ValueError(f"bias of shape {list(bias.shape)} does not match the filter's {w.shape[3]} outputs")
    if activation not in ("", "Relu"):
        raise ValueError(f"unknown activation {activation!r}")

    return _convolve(ctx, x, w, strides, padding, _Epilogue(bias, activation == "Relu"))


def _conv_backprop_input(ctx, input_sizes, w, dy, strides, padding, data_format="NHWC"):
    """The adjoint of im2col: each chunk's column gradients (dy @ w.T) added back to the input positions
    they were read from, one strided add per filter offset (at stride 1, a convolution instead)."""
    xp = ctx.xp
    kh, kw, c, o = w.shape
    sizes = host_ints(ctx, input_sizes)
    oh, ow, pads = _geometry(sizes, kh, kw, strides, padding)
    if tuple(dy.shape) != (sizes[0], oh, ow, o):
        raise ValueError(f"out_backprop of shape {list(dy.shape)} does not match the {list(sizes)} input a "
                         f"{kh}x{kw} {padding} convolution with strides {list(strides)} would read: it expects "
                         f"{[sizes[0], oh, ow, o]}")
    n, h, wd, _ = sizes
    w2t = w.reshape(-1, o).T
    if _pointwise(kh, kw, strides):
        return interruptible.matmul(ctx, xp.ascontiguousarray(dy).reshape(-1, o), w2t).reshape(sizes)
    if dy.size and w.size and conv_library.usable(xp, w, dy):
        threads = interruptible.library_threads(ctx, dy.size * kh * kw * c)
        if threads:
            return np.ascontiguousarray(conv_library.input_gradient(dy, w, (n, h, wd, c), strides, pads,
                                                                    threads=threads))
        grad = xp.empty(sizes, dtype=dy.dtype)

        def library_slice(s):
            grad[s] = conv_library.input_gradient(dy[s], w, (s.stop - s.start, h, wd, c), strides, pads)

        _on_library_slices(ctx, n, dy.size * kh * kw * c, library_slice)
        return grad
    if strides[1] == strides[2] == 1:
        return _transposed_at_stride_1(ctx, w, dy, pads)
    dtype = xp.result_type(w, dy)
    padded = xp.zeros((n, h + pads[1][0] + pads[1][1], wd + pads[2][0] + pads[2][1], c), dtype=dtype)
    dy2 = dy.reshape(n, -1, o)
    chunks = _chunks(n, oh * ow * kh * kw * c * padded.itemsize)

    def chunk(part):  # chunks write disjoint images of `padded`
        start, stop = chunks[part]
        ctx.check_interrupt()
        cols = workspace.scratch(xp, ((stop - start) * oh * ow, kh * kw * c), dtype)
        interruptible.matmul(ctx, dy2[start:stop].reshape(-1, o), w2t, out=cols)
        cols = cols.reshape(stop - start, oh, ow, kh, kw, c)
        target = padded[start:stop]
        for i, j, view in _windows(xp, target, kh, kw, strides[1], strides[2], oh, ow):
            view += cols[:, :, :, i, j, :]

    intra_op.run(len(chunks), chunk, intra_op.ways(dy.size * w2t.shape[1]))
    return _crop(padded, pads, sizes)


def _transposed_at_stride_1(ctx, w, dy, pads):
    """At stride 1 the input gradient is the VALID convolution of dy, padded by the filter's extent less
    the forward padding, with the filter flipped and its in/out channels swapped: per chunk one im2col
    copy and one product with a long inner dimension, ~15% less than the 25 scattered adds (W10)."""
    xp = ctx.xp
    kh, kw = w.shape[:2]
    _, (top, bottom), (left, right), _ = pads
    flipped = xp.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))
    padded = _pad(xp, dy, ((0, 0), (kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right), (0, 0)))
    return _conv2d(ctx, padded, flipped, (1, 1, 1, 1), "VALID")


def _conv_backprop_filter(ctx, x, filter_sizes, dy, strides, padding, data_format="NHWC"):
    xp = ctx.xp
    kh, kw, c, o = host_ints(ctx, filter_sizes)
    n = x.shape[0]
    oh, ow, pads = _geometry(x.shape, kh, kw, strides, padding)
    if _pointwise(kh, kw, strides):
        grad = interruptible.matmul(ctx, xp.ascontiguousarray(x).reshape(-1, c).T, dy.reshape(-1, o))
        return grad.reshape(kh, kw, c, o)
    if dy.size and x.size and conv_library.usable(xp, x, dy):
        return _library_filter_gradient(ctx, x, (kh, kw, c, o), dy, strides, pads)
    patches = _patches(xp, _pad(xp, x, pads), kh, kw, strides[1], strides[2], oh, ow)
    dy2 = dy.reshape(n, -1, o)
    chunks = _chunks(n, oh * ow * kh * kw * c * x.itemsize)
    ways = intra_op.ways(dy.size * kh * kw * c)
    # Each group of consecutive chunks sums into its own partial, and the partials add up in order: the
    # same bits however the threads took the groups.
    groups = intra_op.groups(len(chunks), ways)
    partials = [None] * len(groups)

    def group(part):
        for start, stop in chunks[groups[part]]:
            ctx.check_interrupt()
            product = interruptible.matmul(ctx, _columns(ctx, patches, start, stop).T, dy2[start:stop].reshape(-1, o))
            if partials[part] is None:
                partials[part] = product
            else:
                partials[part] += product

    intra_op.run(len(groups), group, ways)
    grad = xp.zeros((kh * kw * c, o), dtype=xp.result_type(x, dy)) if not partials else partials[0]
    for partial in partials[1:]:
        grad += partial
    return grad.reshape(kh, kw, c, o)


def _library_filter_gradient(ctx, x, filter_shape, dy, strides, pads):
    partials = _on_library_slices(ctx, x.shape[0], dy.size * math.prod(filter_shape[:3]), lambda s: (
        conv_library.filter_gradient(x[s], dy[s], filter_shape, strides, pads)))
    grad = partials[0].copy()
    for partial in partials[1:]:  # in slice order: the same bits however the threads took the slices
        grad += partial
    return grad


def _on_library_slices(ctx, n, macs, body) -> list:
    """conv_library's one-thread calls, body(slice of the batch): one slice per intra-op thread, or the
    fewest that keep each within interruptible.LIBRARY_BLOCK_FACTOR * BLOCK_MACS multiply-adds (a run
    stops between two), their count a multiple of the threads. oneDNN runs fewer, larger slices faster:
    W10's traced step (Zen 5, 2 threads, 8 alternating rounds) took conv2's gradients 6.5 + 6.0 ms in
    one slice a thread against 7.4 + 6.9 in four, and the step 45.8 against 49.5 ms; with a busy
    neighbour 73.0 against 75.9 (a slice left to a preempted thread costs less than four calls'
    overheads). The slices depend on the batch, its work and the thread count alone, so partial sums
    over them add up the same every time."""
    ways = intra_op.ways(macs, one_thread_calls=True)
    most = max(1, interruptible.LIBRARY_BLOCK_FACTOR * interruptible.BLOCK_MACS * n // max(macs, 1))
    count = max(ways, -(-n // most))
    slices = intra_op.split(n, -(-count // ways) * ways, most)
    return _run_slices(ctx, slices, ways, body)


def _on_slices(ctx, n, ways, body, most=None) -> list:
    """[body(slice) for each slice of the batch], run on `ways` intra-op threads. The slices depend on
    the batch and the thread count alone, so partial sums over them add up the same every time."""
    return _run_slices(ctx, intra_op.groups(n, ways, most), ways, body)


def _run_slices(ctx, slices, ways, body) -> list:
    results = [None] * len(slices)

    def part(index):
        ctx.check_interrupt()
        results[index] = body(slices[index])

    intra_op.run(len(slices), part, ways)
    return results


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
    """The input_sizes; when they are known, dy must have the shape the convolution of such an input gives."""
    _check_window_attrs(attrs)
    sizes, w, dy = _sizes_shape(args[0]), args[1].shape, args[2].shape
    if None not in sizes and w is not None and dy is not None and len(dy) == 4:
        expected = _conv_out_shape(sizes, w, attrs)
        if any(a is not None and b is not None and a != b for a, b in zip(expected, dy)):
            raise ShapeError(f"out_backprop {rules.fmt(dy)} does not match the convolution of an input of shape "
                             f"{rules.fmt(sizes)} with filter {rules.fmt(w)}, which gives {rules.fmt(expected)}")
    return sizes


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
# Conv2D + bias (+ Relu), made by the compiler (compiler/fuse_conv.py) after gradients were built; `covers`
# names the graph nodes it replaced (for errors and traces).
FusedConv2D = op("_FusedConv2D", shape=_conv_shape, dtype=FLOAT, kernel=_fused_conv2d, grad=NOT_DIFFERENTIABLE,
                 inputs=("input", "filter", "bias"), compiler_only=True,
                 attrs={**_CONV_ATTRS, "activation": attr("string", ""), "covers": attr("list(string)")})
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


def _images(ctx, x, run) -> None:
    """run(start, stop) over chunks of the batch of `x`, on the intra-op threads when it is large (numpy);
    every chunk writes only its own images of the result."""
    n = x.shape[0]
    ways = intra_op.ways_for_elements(x.size) if ctx.xp is np and n > 1 else 1
    chunks = intra_op.split(n, 1, max(1, POOL_CHUNK_ELEMENTS // max(x.size // max(n, 1), 1))) if ways > 1 else [
        slice(0, n)]
    intra_op.run(len(chunks), lambda part: run(chunks[part].start, chunks[part].stop), ways)


def _max_pool(ctx, x, ksize, strides, padding, data_format="NHWC"):
    xp = ctx.xp
    _, kh, kw, _ = ksize
    oh, ow, pads = _geometry(x.shape, kh, kw, strides, padding)
    padded = _pad(xp, x, pads, -np.inf)
    out = xp.empty((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)

    def images(start, stop):
        into = out[start:stop]
        views = _windows(xp, padded[start:stop], kh, kw, strides[1], strides[2], oh, ow)
        into[...] = next(views)[2]
        for _, _, view in views:
            xp.maximum(into, view, out=into)

    _images(ctx, x, images)
    return out


def _max_pool_grad_kernel(ctx, x, z, dy, ksize, strides, padding, data_format="NHWC"):
    """dy routed to the first element of each window that attains the max (as TF's MaxPoolGrad)."""
    xp = ctx.xp
    _, kh, kw, _ = ksize
    oh, ow, pads = _geometry(x.shape, kh, kw, strides, padding)
    if x.size and dy.size and conv_library.usable(xp, x, dy):
        grad = _library_max_pool_grad(ctx, x, dy, ksize, strides, pads)
        if grad is not None:
            return grad
    if tuple(strides[1:3]) == (kh, kw) and not any(b or a for b, a in pads):
        grad = xp.zeros(x.shape, dtype=dy.dtype)
        finite = bool(xp.isfinite(dy).all())
        _images(ctx, x, lambda start, stop: _tiled_max_pool_grad(
            xp, x[start:stop], z[start:stop], dy[start:stop], kh, kw, oh, ow, grad[start:stop], finite))
        return grad
    padded = _pad(xp, x, pads, -np.inf)
    grad = xp.zeros(padded.shape, dtype=dy.dtype)
    taken = xp.zeros(z.shape, dtype=bool)
    grad_views = _windows(xp, grad, kh, kw, strides[1], strides[2], oh, ow)
    for (_, _, view), (_, _, target) in zip(_windows(xp, padded, kh, kw, strides[1], strides[2], oh, ow), grad_views):
        hit = (view == z) & ~taken
        target += xp.where(hit, dy, dy.dtype.type(0))
        taken |= hit
    return _crop(grad, pads, x.shape)


def _library_pool_ways(x) -> int:
    """Threads for a conv_library pool over `x`: its kernels cost about two elementwise passes per input
    (W10's 128x14x14x64 max-pool with indices: ~1 ms on one thread), so they split from half the size."""
    return intra_op.ways_for_elements(2 * x.size)


def _library_max_pool_grad(ctx, x, dy, ksize, strides, pads):
    """conv_library's gradient by slices of images on the intra-op threads, or None when any slice must
    take graphexec's kernel."""
    grad = np.empty(x.shape, dy.dtype)
    taken = _on_slices(ctx, x.shape[0], _library_pool_ways(x), lambda s: (
        conv_library.max_pool_gradient(x[s], dy[s], ksize, strides, pads, grad[s])))
    return grad if all(taken) else None


def _tiled_max_pool_grad(xp, x, z, dy, kh, kw, oh, ow, grad, finite):
    """Windows that tile the input (stride == ksize, no padding) do not overlap: one comparison of every
    input with its window's max, ties cut to the first in each window, and dy copied where it is left
    (into `grad`, zeros shaped like x)."""
    n, _, _, c = x.shape
    tiles = x[:, :oh * kh, :ow * kw].reshape(n, oh, kh, ow, kw, c)
    hits = tiles == z[:, :, None, :, None, :]
    offsets = [(i, j) for i in range(kh) for j in range(kw)]
    taken = hits[:, :, 0, :, 0, :].copy()
    for number, (i, j) in enumerate(offsets[1:], 2):
        hit = hits[:, :, i, :, j, :]
        xp.greater(hit, taken, out=hit)  # a max not taken by an earlier offset of its window
        if number < len(offsets):
            xp.logical_or(taken, hit, out=taken)
    targets = grad[:, :oh * kh, :ow * kw].reshape(n, oh, kh, ow, kw, c)
    shares = dy[:, :, None, :, None, :]
    if finite:
        xp.multiply(shares, hits, out=targets)  # ~8x faster than copyto(where=) in numpy
    else:  # NaN * 0 is NaN: only the window's max may receive a NaN
        xp.copyto(targets, shares, where=hits)


def _max_pool_with_indices(ctx, x, ksize, strides, padding, data_format="NHWC"):
    """MaxPool, and where each maximum came from, for its gradient (compiler/pool_indices.py). The
    indices come from conv_library; where it does not run they are empty, and the gradient finds the
    maxima again."""
    xp = ctx.xp
    if x.size and conv_library.usable(xp, x):
        _, kh, kw, _ = ksize
        oh, ow, pads = _geometry(x.shape, kh, kw, strides, padding)
        out = workspace.aligned_empty((x.shape[0], oh, ow, x.shape[3]), x.dtype)  # a convolution's input next
        indices = np.empty(out.shape, np.int64)
        loop = POOLED.get("float32")
        if loop is not None and x.flags.c_contiguous and conv_library.pools(ksize, strides, pads):
            x = compiled.read_only(x)
            _on_slices(ctx, x.shape[0], _library_pool_ways(x), lambda s: loop(
                x[s], out[s], indices[s], strides[1], strides[2], kh, kw, pads[1][0], pads[2][0]))
            return out, indices
        if all(_on_slices(ctx, x.shape[0], _library_pool_ways(x), lambda s: (
                conv_library.max_pool_with_indices(x[s], ksize, strides, pads, out[s], indices[s])))):
            return out, indices
    return _max_pool(ctx, x, ksize, strides, padding), xp.zeros((0,), np.int64)


def _pooled_loop(x, out, indices, sh, sw, kh, kw, top, left):
    """torch's max_pool2d_with_indices on NHWC arrays, for the windows torch can say (conv_library.pools):
    each output the first maximum of its window's inputs inside the image (row-major), or its last NaN,
    and its index row * width + column in its channel plane. One pass that writes each output once, with
    no index in a second layout (W10's first pool, 2 threads, Zen 4: 0.70 against torch's 0.93 ms)."""
    n, h, w, c = x.shape
    _, oh, ow, _ = out.shape
    for b in range(n):
        for i in range(oh):
            r0 = i * sh - top
            for j in range(ow):
                q0 = j * sw - left
                into, where = out[b, i, j], indices[b, i, j]
                first = True
                for r in range(max(r0, 0), min(r0 + kh, h)):
                    for q in range(max(q0, 0), min(q0 + kw, w)):
                        values, at = x[b, r, q], r * w + q
                        if first:  # torch starts from -inf at the first input: the same for any value
                            for channel in range(c):
                                into[channel] = values[channel]
                                where[channel] = at
                            first = False
                            continue
                        for channel in range(c):
                            value = values[channel]
                            if value > into[channel] or value != value:
                                into[channel] = value
                                where[channel] = at


def _pooled_signatures(types):
    four = types.Array(types.float32, 4, "C")
    read = types.Array(types.float32, 4, "C", readonly=True)
    indices = types.Array(types.int64, 4, "C")
    return {"float32": types.void(read, four, indices, *[types.int64] * 6)}


POOLED = compiled.Loop(_pooled_loop, _pooled_signatures)


def _routed_loop(grad, dy, z, indices, sh, sw, kh, kw, top, left, relu_mask):
    """MaxPoolGrad of windows that do not overlap, from torch's indices: each input of a window takes the
    window's dy where the window's index names it, else 0; with `relu_mask`, dy * (z > 0), as ReluGrad(dy,
    z) would have given it. Inputs outside every window are not written (`_routed_max_pool_grad` zeroes
    them first). Window by window, plain 4-D indexing: W10's first pool, one thread, Zen 5, 0.51 ms against
    3.3 for the same loop input by input with a window found for each (its view per input and divisions
    kept the channel loop from being vectorized); torch's kernel zeroes the gradient, then adds. Returns
    whether a pooled value is NaN (then torch's index differs from TF's rule, and the caller starts over):
    found here, where z is read anyway, instead of in a pass of its own (~0.3 ms a W10 step)."""
    n, h, w, c = grad.shape
    _, oh, ow, _ = dy.shape
    zero = np.float32(0)
    nan = False
    for b in range(n):
        for i in range(oh):
            r0 = i * sh - top
            for r in range(max(r0, 0), min(r0 + kh, h)):
                for j in range(ow):
                    q0 = j * sw - left
                    for q in range(max(q0, 0), min(q0 + kw, w)):
                        at = r * w + q
                        # zero + dy, as torch's kernel adds dy to zeros: a -0.0 comes out +0.0 on every path
                        if relu_mask:
                            for channel in range(c):
                                pooled = z[b, i, j, channel]
                                nan |= pooled != pooled
                                routed = zero + dy[b, i, j, channel] * np.float32(pooled > 0)
                                grad[b, r, q, channel] = routed if indices[b, i, j, channel] == at else zero
                        else:
                            for channel in range(c):
                                pooled = z[b, i, j, channel]
                                nan |= pooled != pooled
                                routed = zero + dy[b, i, j, channel]
                                grad[b, r, q, channel] = routed if indices[b, i, j, channel] == at else zero
    return nan


def _routed_signatures(types):
    four = types.Array(types.float32, 4, "C")
    read = types.Array(types.float32, 4, "C", readonly=True)
    indices = types.Array(types.int64, 4, "C", readonly=True)
    return {"float32": types.boolean(four, read, read, indices, *[types.int64] * 6, types.boolean)}


ROUTED = compiled.Loop(_routed_loop, _routed_signatures)


def _routed_max_pool_grad(ctx, z, dy, indices, ksize, strides, pads, grad, relu_mask) -> bool | None:
    """`_routed_loop` by slices of images on the intra-op threads, where it applies (windows that do not
    overlap, contiguous operands) and is compiled: True once `grad` is written, False if a pooled value
    is NaN (`grad` then holds nothing to keep); None, with nothing done, where it does not apply."""
    _, kh, kw, _ = ksize
    if strides[1] < kh or strides[2] < kw or not all(a.flags.c_contiguous for a in (z, dy, indices)):
        return None
    loop = ROUTED.get("float32")
    if loop is None:
        return None
    z, dy, indices = compiled.read_only(z), compiled.read_only(dy), compiled.read_only(indices)
    top, left = pads[1][0], pads[2][0]
    # windows side by side (stride == size) that reach the last row and column cover every input
    tiled = (strides[1] == kh and strides[2] == kw and dy.shape[1] * kh - top >= grad.shape[1]
             and dy.shape[2] * kw - left >= grad.shape[2])

    def body(s):
        if not tiled:
            grad[s].fill(0)
        return loop(grad[s], dy[s], z[s], indices[s], strides[1], strides[2], kh, kw, top, left, relu_mask)

    return not any(_on_slices(ctx, grad.shape[0], _library_pool_ways(grad), body))


def _max_pool_grad_at_indices(ctx, x, z, dy, indices, ksize, strides, padding, data_format="NHWC",
                              relu_mask=False):
    """MaxPoolGrad from the forward pass's indices: dy added where each maximum came from. TF's
    MaxPoolGrad exactly, so where a window held a NaN (TF routes nothing to it; torch's index points at
    the NaN) or there are no indices, that kernel runs instead. With `relu_mask`, of ReluGrad(dy, z)
    (compiler/pool_indices.py)."""
    at_indices = indices.size and indices.shape == dy.shape and dy.size and conv_library.usable(ctx.xp, x, dy)
    if at_indices:
        _, kh, kw, _ = ksize
        _, _, pads = _geometry(x.shape, kh, kw, strides, padding)
        grad = workspace.aligned_empty(x.shape, dy.dtype)  # a convolution's gradients read it next
        routed = _routed_max_pool_grad(ctx, z, dy, indices, ksize, strides, pads, grad, relu_mask)
        if routed:
            return grad
        at_indices = routed is None and not conv_library.has_nan(z)  # the loop looked for NaN itself
    if relu_mask:
        dy = nn_ops.ReluGrad.kernel(ctx, dy, z)
    if not at_indices:
        return _max_pool_grad_kernel(ctx, x, z, dy, ksize, strides, padding, data_format)
    _on_slices(ctx, x.shape[0], _library_pool_ways(x), lambda s: (
        conv_library.max_pool_gradient_at(x[s], dy[s], indices[s], ksize, strides, pads, grad[s])))
    return grad


def _pool_attrs(op):
    return {k: op.attrs[k] for k in ("ksize", "strides", "padding", "data_format")}


_POOL_ATTRS = {"ksize": attr("list(int)"), **_CONV_ATTRS}
MaxPool = op("MaxPool", shape=_pool_shape, dtype=FLOAT, kernel=_max_pool, inputs=("input",), attrs=_POOL_ATTRS,
             grad=lambda op, dy: [apply_op("MaxPoolGrad", (op.inputs[0], op.outputs[0], dy), _pool_attrs(op),
                                           "MaxPoolGrad").outputs[0]])
MaxPoolGrad = op("MaxPoolGrad", shape=lambda args, attrs: args[0].shape, dtype=FLOAT, kernel=_max_pool_grad_kernel,
                 grad=NOT_DIFFERENTIABLE, inputs=("orig_input", "orig_output", "grad"), attrs=_POOL_ATTRS)


# MaxPool and MaxPoolGrad of one window, rewritten by the compiler (compiler/pool_indices.py) so that the
# gradient reads the forward pass's indices instead of finding every maximum again (TF's
# MaxPoolWithArgmax and MaxPoolGradWithArgmax do the same; W10 in process, both pools and their gradients
# in one trace: 5.5 -> 4.3 ms a step).
MaxPoolWithIndices = op("_MaxPoolWithIndices", kernel=_max_pool_with_indices, grad=NOT_DIFFERENTIABLE,
                        shape=lambda args, attrs: [_pool_shape(args, attrs)] * 2, inputs=("input",),
                        dtype=lambda args, attrs: [FLOAT(args, attrs), dtypes.int64], attrs=_POOL_ATTRS,
                        compiler_only=True)
MaxPoolGradAtIndices = op("_MaxPoolGradAtIndices", shape=lambda args, attrs: args[0].shape,
                          dtype=lambda args, attrs: FLOAT(args[:3], attrs),
                          kernel=_max_pool_grad_at_indices, grad=NOT_DIFFERENTIABLE, compiler_only=True,
                          inputs=("orig_input", "orig_output", "grad", "indices"),
                          attrs={**_POOL_ATTRS, "relu_mask": attr("bool", False)})


def _routed_sum_loop(sums, dy, z, relu_mask):
    """Per-channel float64 sums of what a max-pool's gradient routes: each window's dy (times z > 0 with
    `relu_mask`, as ReluGrad's), none from a window whose maximum is NaN (TF's MaxPoolGrad routes it
    nowhere). In numpy's order for the same sums (`_routed_sums`), so the bits are the same."""
    n, oh, ow, c = dy.shape
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for channel in range(c):
                    pooled = z[b, i, j, channel]
                    routed = dy[b, i, j, channel]
                    if relu_mask:
                        routed = routed * np.float32(pooled > 0)
                    sums[channel] += routed if pooled == pooled else 0.0


def _routed_sum_signatures(types):
    read = types.Array(types.float32, 4, "C", readonly=True)
    return {"float32": types.void(types.Array(types.float64, 1, "C"), read, read, types.boolean)}


ROUTED_SUM = compiled.Loop(_routed_sum_loop, _routed_sum_signatures)


def _routed_sums(ctx, z, dy, relu_mask, static_shape):
    """SumToShape of a max-pool gradient over every axis but channels, from the pool's dy and pooled
    values alone (compiler/pool_indices.py): every window routes its dy to exactly one input, so the sums
    are those of dy, a quarter of the gradient's size for 2x2 windows (W10's two bias gradients read
    12.8 and 6.4 MB as SumToShape). Summed in float64, so the float32 result is the exact sum rounded
    (nearly always: bits can differ from a float32 sum of the gradient)."""
    channels = dy.shape[-1]
    loop = ROUTED_SUM.get("float32") if ctx.xp is np and dy.dtype == z.dtype == np.float32 else None
    if loop is not None and dy.flags.c_contiguous and z.flags.c_contiguous and dy.ndim == 4:
        sums = np.zeros(channels, np.float64)
        loop(sums, compiled.read_only(dy), compiled.read_only(z), relu_mask)
    else:
        xp = ctx.xp
        routed = dy * (z > 0).astype(dy.dtype) if relu_mask else dy
        routed = xp.where(z == z, routed, xp.zeros((), dy.dtype))
        sums = routed.reshape(-1, channels).sum(axis=0, dtype=xp.float64)
    return sums.astype(dy.dtype).reshape(static_shape.dims)


# SumToShape(_MaxPoolGradAtIndices(...)) over all but the channel axis (a bias's gradient), rewritten by the
# compiler (compiler/pool_indices.py) to read the pool's dy instead of the 4x larger gradient.
RoutedChannelSums = op("_RoutedChannelSums", shape=lambda args, attrs: attrs["static_shape"].dims,
                       dtype=lambda args, attrs: FLOAT(args, attrs), kernel=_routed_sums,
                       grad=NOT_DIFFERENTIABLE, compiler_only=True, inputs=("orig_output", "grad"),
                       attrs={"relu_mask": attr("bool", False), "static_shape": attr("shape")})


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
