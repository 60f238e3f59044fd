"""2-D convolution (NHWC) with its gradients (pooling: ops/pool_ops.py; the window geometry both share:
ops/windows.py).

Convolution is im2col + matmul, a few images at a time: the columns of a chunk are copied once from a
strided view of the windows into the thread's scratch buffer and multiplied by the filter; the loops
run over chunks and the kernel's few offsets (5x5 = 25), never over pixels. Chunks run on the
intra-op threads (graphexec.runtime.intra_op), each with its own scratch buffer. Every kernel uses `ctx.xp`,
so the CuPy backend runs the same code. With torch installed, float32 convolutions and their gradients on
the host go to oneDNN's kernels instead (graphexec.runtime.conv_library), as one call or by fixed slices
of the batch on the same threads. The Python API that builds these ops is graphexec.nn.
"""
from __future__ import annotations

import math

import numpy as np

from graphexec import dtypes
from graphexec.framework import apply_op
from graphexec.ops import interruptible, rules, workspace
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.ops.shape_inputs import host_ints, shape_of
from graphexec.ops.windows import (WINDOW_ATTRS, check_window_attrs, crop, geometry, out_shape, pad,
                                   run_slices, sizes_shape, window_views)
from graphexec.runtime import conv_library, intra_op

FLOAT = rules.same_dtype(*dtypes.FLOATING)


# -- Conv2D and its two backprops ------------------------------------------------------------------------------
# The batch is processed in chunks whose im2col columns take about this much memory: they stay in the
# cache between being written and being multiplied, live in the thread's reused scratch buffer, and
# a cancelled or expired run stops between two chunks.
CHUNK_BYTES = 4 << 20
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
    oh, ow, pads = geometry(x.shape, kh, kw, strides, padding)
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
    patches = _patches(xp, pad(xp, x, pads), kh, kw, strides[1], strides[2], oh, ow)
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
    oh, ow, pads = geometry(sizes, kh, kw, strides, padding)
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
        for i, j, view in window_views(xp, target, kh, kw, strides[1], strides[2], oh, ow):
            view += cols[:, :, :, i, j, :]

    intra_op.run(len(chunks), chunk, intra_op.ways(dy.size * w2t.shape[1]))
    return crop(padded, pads, sizes)


def _transposed_at_stride_1(ctx, w, dy, pads):
    """At stride 1 the input gradient is the VALID convolution of dy, padded by the filter's extent less
    the forward padding, with the filter flipped and its in/out channels swapped: per chunk one im2col
    copy and one product with a long inner dimension, ~15% less than the 25 scattered adds (W10)."""
    xp = ctx.xp
    kh, kw = w.shape[:2]
    _, (top, bottom), (left, right), _ = pads
    flipped = xp.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))
    padded = pad(xp, dy, ((0, 0), (kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right), (0, 0)))
    return _conv2d(ctx, padded, flipped, (1, 1, 1, 1), "VALID")


def _conv_backprop_filter(ctx, x, filter_sizes, dy, strides, padding, data_format="NHWC"):
    xp = ctx.xp
    kh, kw, c, o = host_ints(ctx, filter_sizes)
    n = x.shape[0]
    oh, ow, pads = geometry(x.shape, kh, kw, strides, padding)
    if _pointwise(kh, kw, strides):
        grad = interruptible.matmul(ctx, xp.ascontiguousarray(x).reshape(-1, c).T, dy.reshape(-1, o))
        return grad.reshape(kh, kw, c, o)
    if dy.size and x.size and conv_library.usable(xp, x, dy):
        return _library_filter_gradient(ctx, x, (kh, kw, c, o), dy, strides, pads)
    patches = _patches(xp, pad(xp, x, pads), kh, kw, strides[1], strides[2], oh, ow)
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
    return run_slices(ctx, slices, ways, body)


def _conv_shape(args, attrs):
    check_window_attrs(attrs)
    return out_shape(args[0].shape, args[1].shape, attrs)


def _conv_backprop_input_shape(args, attrs):
    """The input_sizes; when they are known, dy must have the shape the convolution of such an input gives."""
    check_window_attrs(attrs)
    sizes, w, dy = sizes_shape(args[0]), args[1].shape, args[2].shape
    if None not in sizes and w is not None and dy is not None and len(dy) == 4:
        expected = out_shape(sizes, w, attrs)
        if any(a is not None and b is not None and a != b for a, b in zip(expected, dy)):
            raise ShapeError(f"out_backprop {rules.fmt(dy)} does not match the convolution of an input of shape "
                             f"{rules.fmt(sizes)} with filter {rules.fmt(w)}, which gives {rules.fmt(expected)}")
    return sizes


def _conv_backprop_filter_shape(args, attrs):
    check_window_attrs(attrs)
    return sizes_shape(args[1])


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


Conv2D = op("Conv2D", shape=_conv_shape, dtype=FLOAT, kernel=_conv2d, grad=_conv_grad, inputs=("input", "filter"),
            attrs=WINDOW_ATTRS)
# Conv2D + bias (+ Relu), made by the compiler (compiler/fuse_conv.py) after gradients were built; `covers`
# names the graph nodes it replaced (for errors and traces).
FusedConv2D = op("_FusedConv2D", shape=_conv_shape, dtype=FLOAT, kernel=_fused_conv2d, grad=NOT_DIFFERENTIABLE,
                 inputs=("input", "filter", "bias"), compiler_only=True,
                 attrs={**WINDOW_ATTRS, "activation": attr("string", ""), "covers": attr("list(string)")})
Conv2DBackpropInput = op("Conv2DBackpropInput", shape=_conv_backprop_input_shape,
                         dtype=lambda args, attrs: FLOAT(args[1:], attrs), kernel=_conv_backprop_input,
                         grad=_conv_backprop_input_grad, inputs=("input_sizes", "filter", "out_backprop"),
                         attrs=WINDOW_ATTRS)
Conv2DBackpropFilter = op("Conv2DBackpropFilter", shape=_conv_backprop_filter_shape,
                          dtype=lambda args, attrs: FLOAT(args[::2], attrs), kernel=_conv_backprop_filter,
                          grad=_conv_backprop_filter_grad, inputs=("input", "filter_sizes", "out_backprop"),
                          attrs=WINDOW_ATTRS)
