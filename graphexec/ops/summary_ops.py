"""Summary ops (TF1's ScalarSummary, HistogramSummary, ImageSummary, TensorSummaryV2, MergeSummary).

Each kernel returns a scalar tf.string holding a serialized TensorBoard `Summary` protobuf, as in TF1:
`sess.run(merged)` gives bytes that `tf.summary.FileWriter.add_summary(bytes, step)` takes, whether the
run was in-process or on a server. The messages are graphexec/v1/summary.proto's, wire-compatible with
TensorFlow's, so the kernels (which run on the worker) need no TensorBoard package.

The tf.summary functions that build these ops live in graphexec/summary/; none of the ops has a gradient.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from graphexec import dtypes, errors
from graphexec.ops import rules
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.rpc.summary import DT_STRING, HistogramProto, Summary, SummaryMetadata, SummaryTensor, SummaryTensorShape

__all__: list[str] = []  # the public names are tf.summary's (graphexec/summary/)


def _serialized(summary: Summary) -> np.ndarray:
    """A scalar tf.string tensor (a 0-d object array) holding the serialized message."""
    out = np.empty((), dtype=object)
    out[()] = summary.SerializeToString()
    return out


def _numeric(what):
    def rule(args, attrs):
        if not (args[0].dtype.is_numeric or args[0].dtype.is_bool):
            raise ShapeError(f"{what} takes a number tensor, got {args[0].dtype.name}")
        return dtypes.string
    return rule


# -- ScalarSummary ----------------------------------------------------------------------------------------
def _scalar_shape(args, attrs):
    if args[0].shape is not None and len(args[0].shape) != 0:
        raise ShapeError(f"tags and values not the same shape: [] != {rules.fmt(args[0].shape)} (tag "
                         f"'{attrs['tag']}')")
    return ()


def _scalar(ctx, values, tag):
    return _serialized(Summary(value=[Summary.Value(tag=tag, simple_value=float(ctx.to_host(values)))]))


ScalarSummary = op("ScalarSummary", shape=_scalar_shape, dtype=_numeric("a scalar summary"), kernel=_scalar,
                   grad=NOT_DIFFERENTIABLE, inputs=("values",), attrs={"tag": attr("string")})


# -- HistogramSummary: TF's bucket scheme (histogram.cc) -------------------------------------------------------
def _default_bucket_limits() -> np.ndarray:
    """TF's default right bucket edges: +-1e-12 growing by 10% up to 1e20, then +-DBL_MAX, and 0."""
    positive = []
    v = 1.0e-12
    while v < 1.0e20:
        positive.append(v)
        v *= 1.1
    positive.append(np.finfo(np.float64).max)
    return np.array([-x for x in reversed(positive)] + [0.0] + positive)


BUCKET_LIMITS = _default_bucket_limits()


def histogram_proto(values: np.ndarray) -> HistogramProto:
    """TF's HistogramProto of `values`: bucket i counts limits[i-1] <= v < limits[i], and each run of empty
    buckets is collapsed into its last one."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    counts = np.bincount(np.searchsorted(BUCKET_LIMITS, flat, side="right"), minlength=len(BUCKET_LIMITS))
    nonzero = counts > 0
    # Keep a bucket when it is non-empty, or when it ends a run of empty ones (the next one is non-empty or
    # it is the last).
    keep = nonzero | np.append(nonzero[1:], True)
    empty = flat.size == 0
    return HistogramProto(min=0.0 if empty else float(flat.min()), max=0.0 if empty else float(flat.max()),
                          num=float(flat.size), sum=float(flat.sum()), sum_squares=float(flat @ flat),
                          bucket_limit=BUCKET_LIMITS[keep].tolist(), bucket=counts[keep].astype(float).tolist())


def _histogram(ctx, values, tag):
    values = np.asarray(ctx.to_host(values))
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise errors.InvalidArgumentError(None, None, f"Nan in summary histogram for: {tag}")
    return _serialized(Summary(value=[Summary.Value(tag=tag, histo=histogram_proto(values))]))


HistogramSummary = op("HistogramSummary", shape=rules.scalar, dtype=_numeric("a histogram summary"),
                      kernel=_histogram, grad=NOT_DIFFERENTIABLE, inputs=("values",), attrs={"tag": attr("string")})


# -- ImageSummary -------------------------------------------------------------------------------------------
def png(image: np.ndarray) -> bytes:
    """A uint8 [height, width, channels] array (1, 3 or 4 channels) as PNG bytes (8-bit, no filtering)."""
    height, width, channels = image.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]  # grey, grey+alpha, RGB, RGBA

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, width * channels)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes()))
            + chunk(b"IEND", b""))


def to_uint8(image: np.ndarray, bad_color: np.ndarray) -> np.ndarray:
    """TF's rule for one float image: all >= 0 scales the largest to 255; with negatives 0 goes to 128 and
    the largest magnitude to 0 or 255 (values truncate); pixels with a non-finite channel get bad_color."""
    image = image.astype(np.float32)
    finite = np.isfinite(image)
    seen = image[finite]
    low, high = (float(seen.min()), float(seen.max())) if seen.size else (np.inf, -np.inf)
    if low < 0:
        largest = max(abs(low), abs(high))
        scale, offset = (0.0 if largest < 1e-6 else 127.0 / largest), 128.0
    else:
        scale, offset = (0.0 if high < 1e-6 else 255.0 / high), 0.0
    out = (np.where(finite, image, 0) * np.float32(scale) + np.float32(offset)).astype(np.uint8)
    out[~finite.all(axis=-1)] = bad_color[: image.shape[-1]]
    return out


def _image_shape(args, attrs):
    shape = args[0].shape
    if shape is not None and (len(shape) != 4 or shape[3] not in (None, 1, 3, 4)):
        raise ShapeError(f"tensor must be 4-D [batch, height, width, channels] with 1, 3 or 4 channels, got "
                         f"{rules.fmt(shape)}")
    if attrs["max_images"] < 1:
        raise ShapeError(f"max_images must be at least 1, got {attrs['max_images']}")
    return ()


def _image_dtype(args, attrs):
    if args[0].dtype not in (dtypes.uint8, dtypes.float16, dtypes.float32, dtypes.float64):
        raise ShapeError(f"an image summary takes uint8 or float images, got {args[0].dtype.name}")
    return dtypes.string


def _image(ctx, tensor, tag, max_images, bad_color):
    batch = np.asarray(ctx.to_host(tensor))[:max_images]
    bad = np.array(bad_color, dtype=np.uint8)
    values = []
    for index, image in enumerate(batch):
        pixels = image if image.dtype == np.uint8 else to_uint8(image, bad)
        height, width, channels = pixels.shape
        values.append(Summary.Value(
            tag=f"{tag}/image" if max_images == 1 else f"{tag}/image/{index}",
            image=Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=png(pixels))))
    return _serialized(Summary(value=values))


ImageSummary = op("ImageSummary", shape=_image_shape, dtype=_image_dtype, kernel=_image, grad=NOT_DIFFERENTIABLE,
                  inputs=("tensor",), attrs={"tag": attr("string"), "max_images": attr("int", 3),
                                             "bad_color": attr("list(int)", (255, 0, 0, 255))})


# -- TensorSummaryV2 (tf.summary.text) ----------------------------------------------------------------------
def _text(ctx, tensor, tag, plugin_name):
    strings = np.asarray(tensor, dtype=object)
    shape = SummaryTensorShape(dim=[SummaryTensorShape.Dim(size=n) for n in strings.shape])
    proto = SummaryTensor(dtype=DT_STRING, tensor_shape=shape, string_val=list(strings.reshape(-1)))
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=plugin_name))
    return _serialized(Summary(value=[Summary.Value(tag=tag, metadata=metadata, tensor=proto)]))


def _text_dtype(args, attrs):
    if args[0].dtype is not dtypes.string:
        raise ShapeError(f"a text summary takes a string tensor, got {args[0].dtype.name}")
    return dtypes.string


TensorSummaryV2 = op("TensorSummaryV2", shape=rules.scalar, dtype=_text_dtype, kernel=_text, grad=NOT_DIFFERENTIABLE,
                     inputs=("tensor",), attrs={"tag": attr("string"), "plugin_name": attr("string", "text")})


# -- MergeSummary -------------------------------------------------------------------------------------------
def _merge(ctx, *inputs):
    merged = Summary()
    tags = set()
    for serialized in inputs:
        for blob in np.asarray(serialized, dtype=object).reshape(-1):
            part = Summary.FromString(blob)
            for value in part.value:
                if value.tag in tags:
                    raise errors.InvalidArgumentError(None, None,
                                                      f"Duplicate tag {value.tag} found in summary inputs")
                tags.add(value.tag)
            merged.value.extend(part.value)
    return _serialized(merged)


def _merge_dtype(args, attrs):
    for index, a in enumerate(args):
        if a.dtype is not dtypes.string:
            raise ShapeError(f"input {index} of a summary merge must be a string tensor, got {a.dtype.name}")
    return dtypes.string


MergeSummary = op("MergeSummary", shape=rules.scalar, dtype=_merge_dtype, kernel=_merge, grad=NOT_DIFFERENTIABLE,
                  inputs=("*inputs",))
