"""Window geometry shared by convolution and pooling (NHWC): output sizes and TF's SAME/VALID padding,
the attrs and shape checks of a windowed op, views of each window offset, and a batch's slices on the
intra-op threads (ops/conv_ops.py, ops/pool_ops.py)."""
from __future__ import annotations

from graphexec.ops import rules
from graphexec.ops.registry import ShapeError, attr
from graphexec.runtime import intra_op

WINDOW_ATTRS = {"strides": attr("list(int)"), "padding": attr("string"), "data_format": attr("string", "NHWC")}


def out_size(size, window, stride, padding):
    """Output length of one spatial dim, and the padding before it (TF's SAME puts the extra after)."""
    if size is None:
        return None, None
    if padding == "VALID":
        return (size - window) // stride + 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2


def check_window_attrs(attrs, what="strides"):
    if attrs["padding"] not in ("SAME", "VALID"):
        raise ShapeError(f"padding must be SAME or VALID, got {attrs['padding']!r}")
    if attrs.get("data_format", "NHWC") != "NHWC":
        raise ShapeError(f"only the NHWC data format is supported, got {attrs['data_format']}")
    strides = attrs["strides"]
    if len(strides) != 4 or strides[0] != 1 or strides[3] != 1 or min(strides) < 1:
        raise ShapeError(f"{what} must be [1, stride_h, stride_w, 1], got {list(strides)}")


def out_shape(x_shape, w_shape, attrs):
    """The static NHWC output shape of sliding a [kh, kw, in, out] window (a filter, or a pool's window
    with in = out) over `x_shape` by attrs' strides and padding; None where unknown."""
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


def sizes_shape(arg):
    if arg.value is not None:
        return tuple(int(d) for d in arg.value)
    return (None,) * 4


def geometry(shape, kh, kw, strides, padding):
    """(oh, ow, pads) of a kh x kw window over an NHWC `shape`: pads as np.pad takes them."""
    _, h, w, _ = shape
    oh, top = out_size(h, kh, strides[1], padding)
    ow, left = out_size(w, kw, strides[2], padding)
    if oh < 1 or ow < 1:
        raise ValueError(f"the {kh}x{kw} window does not fit the {h}x{w} input with {padding} padding")
    pad_h = max((oh - 1) * strides[1] + kh - h, 0)
    pad_w = max((ow - 1) * strides[2] + kw - w, 0)
    return oh, ow, ((0, 0), (top, pad_h - top), (left, pad_w - left), (0, 0))


def pad(xp, x, pads, value=0):
    if not any(b or a for b, a in pads):
        return x
    return xp.pad(x, pads, mode="constant", constant_values=value)


def crop(x, pads, shape):
    _, (top, _), (left, _), _ = pads
    return x[:, top:top + shape[1], left:left + shape[2], :]


def window_views(xp, padded, kh, kw, sh, sw, oh, ow):
    """Yield (i, j, view): the input element at offset (i, j) of every output position's window."""
    for i in range(kh):
        for j in range(kw):
            yield i, j, padded[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]


def on_slices(ctx, n, ways, body, most=None) -> list:
    """[body(slice) for each slice of the batch], run on `ways` intra-op threads. The slices depend on
    the batch and the thread count alone, so partial sums over them add up the same every time."""
    return run_slices(ctx, intra_op.groups(n, ways, most), ways, body)


def run_slices(ctx, slices, ways, body) -> list:
    results = [None] * len(slices)

    def part(index):
        ctx.check_interrupt()
        results[index] = body(slices[index])

    intra_op.run(len(slices), part, ways)
    return results
