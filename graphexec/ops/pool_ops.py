"""Max- and average pooling (NHWC) with their gradients, and the forms the compiler rewrites max-pooling
into (compiler/pool_indices.py): the pool with the indices of its maxima, the gradient that routes dy
through them (optionally masked as ReluGrad would), and a bias gradient summed from the pool's dy.

With torch installed, float32 max-pooling on the host runs compiled loops (runtime/compiled.py) or
torch's kernels (runtime/conv_library.py), by fixed slices of the batch on the intra-op threads;
otherwise, and for AvgPool, numpy over strided views of each window offset (ops/windows.py), the same
code for CuPy arrays. The Python API that builds these ops is graphexec.nn.
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.framework import apply_op
from graphexec.ops import nn_ops, rules, workspace
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.ops.shape_inputs import host_ints, shape_of
from graphexec.ops.windows import (WINDOW_ATTRS, check_window_attrs, crop, geometry, on_slices, out_shape, pad,
                                   sizes_shape, window_views)
from graphexec.runtime import compiled, conv_library, intra_op

FLOAT = rules.same_dtype(*dtypes.FLOATING)
POOL_CHUNK_ELEMENTS = 1 << 18  # pooling's chunks of images, on the intra-op threads
OFFSETS = "float32, int8 offsets"  # the pool loops' signature for indices as offsets within their window


def _pool_shape(args, attrs):
    check_window_attrs(attrs)
    check_window_attrs({**attrs, "strides": attrs["ksize"]}, "ksize")
    x = args[0].shape
    if x is None:
        return None
    if len(x) != 4:
        raise ShapeError(f"input must be rank 4 (NHWC), got shape {rules.fmt(x)}")
    _, kh, kw, _ = attrs["ksize"]
    return out_shape(x, (kh, kw, x[3], x[3]), attrs)


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
    oh, ow, pads = geometry(x.shape, kh, kw, strides, padding)
    padded = pad(xp, x, pads, -np.inf)
    out = xp.empty((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)

    def images(start, stop):
        into = out[start:stop]
        views = window_views(xp, padded[start:stop], kh, kw, strides[1], strides[2], oh, ow)
        into[...] = next(views)[2]
        for _, _, view in views:
            xp.maximum(into, view, out=into)

    _images(ctx, x, images)
    return out


def _max_pool_grad_kernel(ctx, x, z, dy, ksize, strides, padding, data_format="NHWC"):
    """dy routed to the first element of each window that attains the max (as TF's MaxPoolGrad)."""
    xp = ctx.xp
    _, kh, kw, _ = ksize
    oh, ow, pads = geometry(x.shape, kh, kw, strides, padding)
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
    padded = pad(xp, x, pads, -np.inf)
    grad = xp.zeros(padded.shape, dtype=dy.dtype)
    taken = xp.zeros(z.shape, dtype=bool)
    grad_views = window_views(xp, grad, kh, kw, strides[1], strides[2], oh, ow)
    for (_, _, view), (_, _, target) in zip(window_views(xp, padded, kh, kw, strides[1], strides[2], oh, ow), grad_views):
        hit = (view == z) & ~taken
        target += xp.where(hit, dy, dy.dtype.type(0))
        taken |= hit
    return crop(grad, pads, x.shape)


def _library_pool_ways(x) -> int:
    """Threads for a conv_library pool over `x`: its kernels cost about two elementwise passes per input
    (W10's 128x14x14x64 max-pool with indices: ~1 ms on one thread), so they split from half the size."""
    return intra_op.ways_for_elements(2 * x.size)


def _library_max_pool_grad(ctx, x, dy, ksize, strides, pads):
    """conv_library's gradient by slices of images on the intra-op threads, or None when any slice must
    take graphexec's kernel."""
    grad = np.empty(x.shape, dy.dtype)
    taken = on_slices(ctx, x.shape[0], _library_pool_ways(x), lambda s: (
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
    """MaxPool, and where each maximum came from, for its gradient (compiler/pool_indices.py): torch's
    int64 positions in the channel plane, or int8 offsets within the window (`_window_offsets`). The
    indices come from the compiled loop or conv_library; where neither runs they are empty, and the
    gradient finds the maxima again."""
    xp = ctx.xp
    if x.size and conv_library.usable(xp, x):
        _, kh, kw, _ = ksize
        oh, ow, pads = geometry(x.shape, kh, kw, strides, padding)
        out = workspace.aligned_empty((x.shape[0], oh, ow, x.shape[3]), x.dtype)  # a convolution's input next
        loop = POOLED.get("float32")
        if loop is not None and x.flags.c_contiguous and conv_library.pools(ksize, strides, pads):
            offsets = _window_offsets(ksize, strides)
            loop = POOLED.get(OFFSETS) if offsets else loop
            indices = np.empty(out.shape, np.int8 if offsets else np.int64)
            x = compiled.read_only(x)
            on_slices(ctx, x.shape[0], _library_pool_ways(x), lambda s: loop(
                x[s], out[s], indices[s], strides[1], strides[2], kh, kw, pads[1][0], pads[2][0], offsets))
            return out, indices
        indices = np.empty(out.shape, np.int64)
        if all(on_slices(ctx, x.shape[0], _library_pool_ways(x), lambda s: (
                conv_library.max_pool_with_indices(x[s], ksize, strides, pads, out[s], indices[s])))):
            return out, indices
    return _max_pool(ctx, x, ksize, strides, padding), xp.zeros((0,), np.int64)


def _pooled_loop(x, out, indices, sh, sw, kh, kw, top, left, in_window):
    """torch's max_pool2d_with_indices on NHWC arrays, for the windows torch can say (conv_library.pools):
    each output the first maximum of its window's inputs inside the image (row-major), or its last NaN,
    and its index row * width + column in its channel plane, or with `in_window` its offset in the window
    (`_window_offsets`). One pass that writes each output once, with no index in a second layout (W10's
    first pool, 2 threads, Zen 4: 0.70 against torch's 0.93 ms)."""
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
                        values, at = x[b, r, q], (r - r0) * kw + q - q0 if in_window else r * w + q
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
    return {key: types.void(read, four, types.Array(index, 4, "C"), *[types.int64] * 6, types.boolean)
            for key, index in (("float32", types.int64), (OFFSETS, types.int8))}


POOLED = compiled.Loop(_pooled_loop, _pooled_signatures)


def _window_offsets(ksize, strides) -> bool:
    """Whether a pool keeps each maximum's index as its int8 offset within the window, (row - the window's
    top) * kw + column - its left, instead of torch's int64 row * width + column: where the windows do
    not overlap, so that `_routed_loop` alone reads them (torch's gradient takes only its own), hold at
    most 127 inputs, and both loops are compiled. An eighth of the bytes written and read back again
    (W10's two pools: 0.8 + 0.4 MB of indices against 6.4 + 3.2)."""
    _, kh, kw, _ = ksize
    return (_windows_apart(ksize, strides) and kh * kw <= np.iinfo(np.int8).max
            and POOLED.get(OFFSETS) is not None and ROUTED.get(OFFSETS) is not None)


def _windows_apart(ksize, strides) -> bool:
    """Whether a pool's windows do not overlap (a stride at least the window): `_routed_loop` takes them."""
    return strides[1] >= ksize[1] and strides[2] >= ksize[2]


def _routed_loop(grad, dy, z, indices, sh, sw, kh, kw, top, left, relu_mask, in_window):
    """MaxPoolGrad of windows that do not overlap, from torch's indices (or with `in_window` offsets within
    the window: `_window_offsets`): each input of a window takes the window's dy where the window's index
    names it, else 0; with `relu_mask`, dy * (z > 0), as ReluGrad(dy, z) would have given it. Inputs
    outside every window are not written (`_routed_max_pool_grad` zeroes them first). Window by window,
    plain 4-D indexing: W10's first pool, one thread, Zen 5, 0.51 ms against 3.3 for the same loop input by
    input with a window found for each (its view per input and divisions kept the channel loop from being
    vectorized); torch's kernel zeroes the gradient, then adds. Returns
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
                        at = (r - r0) * kw + q - q0 if in_window else r * w + q
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
    return {key: types.boolean(four, read, read, types.Array(index, 4, "C", readonly=True), *[types.int64] * 6,
                               types.boolean, types.boolean)
            for key, index in (("float32", types.int64), (OFFSETS, types.int8))}


ROUTED = compiled.Loop(_routed_loop, _routed_signatures)


def _routed_max_pool_grad(ctx, z, dy, indices, ksize, strides, pads, grad, relu_mask) -> bool | None:
    """`_routed_loop` by slices of images on the intra-op threads, where it applies (windows that do not
    overlap, contiguous operands) and is compiled: True once `grad` is written, False if a pooled value
    is NaN (`grad` then holds nothing to keep); None, with nothing done, where it does not apply."""
    if not _windows_apart(ksize, strides) or not all(a.flags.c_contiguous for a in (z, dy, indices)):
        return None
    offsets = indices.dtype == np.int8
    loop = ROUTED.get(OFFSETS if offsets else "float32")
    if loop is None:
        return None
    z, dy, indices = compiled.read_only(z), compiled.read_only(dy), compiled.read_only(indices)
    _, kh, kw, _ = ksize
    top, left = pads[1][0], pads[2][0]
    # windows side by side (stride == size) that reach the last row and column cover every input
    tiled = (strides[1] == kh and strides[2] == kw and dy.shape[1] * kh - top >= grad.shape[1]
             and dy.shape[2] * kw - left >= grad.shape[2])

    def body(s):
        if not tiled:
            grad[s].fill(0)
        return loop(grad[s], dy[s], z[s], indices[s], strides[1], strides[2], kh, kw, top, left, relu_mask,
                    offsets)

    return not any(on_slices(ctx, grad.shape[0], _library_pool_ways(grad), body))


def _max_pool_grad_at_indices(ctx, x, z, dy, indices, ksize, strides, padding, data_format="NHWC",
                              relu_mask=False):
    """MaxPoolGrad from the forward pass's indices: dy added where each maximum came from. TF's
    MaxPoolGrad exactly, so where a window held a NaN (TF routes nothing to it; torch's index points at
    the NaN) or there are no indices, that kernel runs instead. With `relu_mask`, of ReluGrad(dy, z)
    (compiler/pool_indices.py)."""
    at_indices = indices.size and indices.shape == dy.shape and dy.size and conv_library.usable(ctx.xp, x, dy)
    if at_indices:
        _, kh, kw, _ = ksize
        _, _, pads = geometry(x.shape, kh, kw, strides, padding)
        grad = workspace.aligned_empty(x.shape, dy.dtype)  # a convolution's gradients read it next
        routed = _routed_max_pool_grad(ctx, z, dy, indices, ksize, strides, pads, grad, relu_mask)
        if routed:
            return grad
        # (the loop looked for NaN itself; torch's gradient cannot read offsets)
        at_indices = routed is None and indices.dtype == np.int64 and not conv_library.has_nan(z)
    if relu_mask:
        dy = nn_ops.ReluGrad.kernel(ctx, dy, z)
    if not at_indices:
        return _max_pool_grad_kernel(ctx, x, z, dy, ksize, strides, padding, data_format)
    on_slices(ctx, x.shape[0], _library_pool_ways(x), lambda s: (
        conv_library.max_pool_gradient_at(x[s], dy[s], indices[s], ksize, strides, pads, grad[s])))
    return grad


def _pool_attrs(op):
    return {k: op.attrs[k] for k in ("ksize", "strides", "padding", "data_format")}


_POOL_ATTRS = {"ksize": attr("list(int)"), **WINDOW_ATTRS}
MaxPool = op("MaxPool", shape=_pool_shape, dtype=FLOAT, kernel=_max_pool, inputs=("input",), attrs=_POOL_ATTRS,
             grad=lambda op, dy: [apply_op("MaxPoolGrad", (op.inputs[0], op.outputs[0], dy), _pool_attrs(op),
                                           "MaxPoolGrad").outputs[0]])
MaxPoolGrad = op("MaxPoolGrad", shape=lambda args, attrs: args[0].shape, dtype=FLOAT, kernel=_max_pool_grad_kernel,
                 grad=NOT_DIFFERENTIABLE, inputs=("orig_input", "orig_output", "grad"), attrs=_POOL_ATTRS)


# MaxPool and MaxPoolGrad of one window, rewritten by the compiler (compiler/pool_indices.py) so that the
# gradient reads the forward pass's indices instead of finding every maximum again (TF's
# MaxPoolWithArgmax and MaxPoolGradWithArgmax do the same; W10 in process, both pools and their gradients
# in one trace: 5.5 -> 4.3 ms a step). The indices are declared int64; where `_window_offsets` holds they
# are int8 offsets (only the gradient's kernel reads them).
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
    oh, ow, pads = geometry(shape, kh, kw, strides, padding)
    ones = pad(xp, xp.ones((1, shape[1], shape[2], 1), dtype=dtype), pads)
    counts = xp.zeros((1, oh, ow, 1), dtype=dtype)
    for _, _, view in window_views(xp, ones, kh, kw, strides[1], strides[2], oh, ow):
        counts += view
    return counts


def _avg_pool(ctx, x, ksize, strides, padding, data_format="NHWC"):
    xp = ctx.xp
    _, kh, kw, _ = ksize
    oh, ow, pads = geometry(x.shape, kh, kw, strides, padding)
    padded = pad(xp, x, pads)
    total = xp.zeros((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    for _, _, view in window_views(xp, padded, kh, kw, strides[1], strides[2], oh, ow):
        total += view
    total /= _window_counts(xp, x.shape, kh, kw, strides, padding, x.dtype)
    return total


def _avg_pool_grad_kernel(ctx, input_sizes, dy, ksize, strides, padding, data_format="NHWC"):
    xp = ctx.xp
    _, kh, kw, _ = ksize
    shape = host_ints(ctx, input_sizes)
    oh, ow, pads = geometry(shape, kh, kw, strides, padding)
    share = dy / _window_counts(xp, shape, kh, kw, strides, padding, dy.dtype)
    grad = xp.zeros((shape[0], shape[1] + pads[1][0] + pads[1][1], shape[2] + pads[2][0] + pads[2][1], shape[3]),
                    dtype=dy.dtype)
    for _, _, view in window_views(xp, grad, kh, kw, strides[1], strides[2], oh, ow):
        view += share
    return crop(grad, pads, shape)


def _avg_pool_grad_shape(args, attrs):
    return sizes_shape(args[0])


AvgPool = op("AvgPool", shape=_pool_shape, dtype=FLOAT, kernel=_avg_pool, inputs=("value",), attrs=_POOL_ATTRS,
             grad=lambda op, dy: [apply_op("AvgPoolGrad", (shape_of(op.inputs[0]), dy), _pool_attrs(op),
                                           "AvgPoolGrad").outputs[0]])
AvgPoolGrad = op("AvgPoolGrad", shape=_avg_pool_grad_shape, dtype=lambda args, attrs: FLOAT(args[1:], attrs),
                 kernel=_avg_pool_grad_kernel, inputs=("orig_input_shape", "grad"), attrs=_POOL_ATTRS,
                 grad=lambda op, g: [None, apply_op("AvgPool", (g,), _pool_attrs(op), "AvgPool").outputs[0]])
