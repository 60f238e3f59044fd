"""tf.summary: summary ops whose runs give serialized TensorBoard `Summary` bytes, and FileWriter.

    loss_summary = tf.summary.scalar("loss", loss)
    merged = tf.summary.merge_all()
    writer = tf.summary.FileWriter("logs", sess.graph)
    writer.add_summary(sess.run(merged, feed), step)
"""
from __future__ import annotations

import re

from graphexec import lazy
from graphexec.framework import apply_op, get_default_graph, name_scope
from graphexec.ops import summary_ops as _summary_ops  # noqa: F401 - declares the summary ops
from graphexec.ops.convert import convert_to_tensor
from graphexec.variables import GraphKeys

__all__ = ["FileWriter", "FileWriterCache", "histogram", "image", "merge", "merge_all", "scalar", "text"]

# Loaded on first use (PEP 562): FileWriter's module imports tensorboardX, which costs more than the rest
# of `import graphexec` (it brings boto3 and more where they are installed), and only writing event files
# needs it. writer_cache itself is light (hooks import it), but imports this package for FileWriter.
__getattr__, __dir__ = lazy.attributes(globals(), {
    "FileWriter": ("graphexec.summary.writer", "FileWriter"),
    "FileWriterCache": ("graphexec.summary.writer_cache", "FileWriterCache")})


def _clean_tag(name: str | None) -> str | None:
    """TF's rule: characters other than letters, digits, '_', '-', '.' and '/' become '_'."""
    return None if name is None else re.sub(r"[^-/\w.]", "_", name)


def _summary(op_type, name, tensor, attrs, collections, family):
    """Create one summary op as TF1 does: its name is the (scoped, uniquified) summary name, which is also
    its tag (prefixed by `family` when given), and it joins `collections` (default: SUMMARIES)."""
    name = _clean_tag(name)
    family = _clean_tag(family)
    with name_scope(name if family is None else f"{family}/{name}") as scope:
        tag = scope.rstrip("/") if family is None else f"{family}/{scope.rstrip('/')}"
        summary = apply_op(op_type, (tensor,), {"tag": tag, **attrs}, scope).outputs[0]
    for key in (collections if collections is not None else [GraphKeys.SUMMARIES]):
        summary.graph.add_to_collection(key, summary)
    return summary


def scalar(name, tensor, collections=None, family=None):
    """A Summary with one simple_value: `tensor` must be a scalar."""
    return _summary("ScalarSummary", name, convert_to_tensor(tensor), {}, collections, family)


def histogram(name, values, collections=None, family=None):
    """A Summary with a histogram of `values` (any shape), in TF's buckets."""
    return _summary("HistogramSummary", name, convert_to_tensor(values), {}, collections, family)


def image(name, tensor, max_outputs=3, collections=None, family=None):
    """A Summary with up to `max_outputs` PNG images of a [batch, height, width, 1|3|4] tensor; float images
    are scaled to 0..255 as TF does, uint8 ones are kept."""
    return _summary("ImageSummary", name, convert_to_tensor(tensor), {"max_images": int(max_outputs)},
                    collections, family)


def text(name, tensor, collections=None):
    """A Summary for TensorBoard's text tab from a string tensor."""
    return _summary("TensorSummaryV2", name, convert_to_tensor(tensor), {}, collections, None)


def merge(inputs, collections=None, name=None):
    """One Summary holding the values of all `inputs` (a run fails on a tag that appears twice)."""
    tensors = [convert_to_tensor(x) for x in inputs]
    with name_scope(name, "Merge", tensors):
        merged = apply_op("MergeSummary", tensors, {}, "MergeSummary").outputs[0]
    for key in collections or ():
        merged.graph.add_to_collection(key, merged)
    return merged


def merge_all(key=GraphKeys.SUMMARIES, scope=None, name=None):
    """merge() of the summaries in collection `key` (under `scope`), or None when there are none."""
    summaries = get_default_graph().get_collection(key, scope)
    return merge(summaries, name=name) if summaries else None
