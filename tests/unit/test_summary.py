"""tf.summary: the summary ops give the same Summary messages as real TensorFlow (golden/summaries/), and
FileWriter's event files load in TensorBoard's own EventAccumulator (a whole training run: test_tensorboard.py)."""
from __future__ import annotations

import io
import json
import pathlib
import runpy

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboardX.proto.summary_pb2 import Summary

import graphexec as tf
from graphexec import errors
from graphexec.ops.summary_ops import histogram_proto, png

GOLDEN = pathlib.Path(__file__).parent / "golden" / "summaries"


def _pillow_png(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)))


def _assert_same(got, want, where):
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), where
        for key in want:
            _assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), (where, got, want)
        for index, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{where}[{index}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-6), where  # sums: float32 vs float64 accumulation order
    else:
        assert got == want, where


def test_summaries_match_tensorflow():
    program = runpy.run_path(str(GOLDEN / "make_golden.py"))  # the same program real TensorFlow ran
    golden = json.loads((GOLDEN / "summaries.json").read_text())
    fetches, feed = program["program"](tf)
    with tf.Session() as sess:
        results = sess.run(fetches, feed)
    for key, value in results.items():
        assert type(value) is bytes, key  # a fetched summary is serialized Summary bytes, as in TF1
    got = {key: program["describe"](value, Summary, _pillow_png) for key, value in results.items()}
    _assert_same(got, golden, "summaries")


def test_summary_ops_are_named_and_collected_as_in_tf1():
    x = tf.placeholder(tf.float32, [])
    with tf.name_scope("train"):
        first = tf.summary.scalar("loss", x)
    second = tf.summary.scalar("loss", x)
    private = tf.summary.scalar("private", x, collections=["mine"])
    assert (first.op.name, first.op.type, second.op.name) == ("train/loss", "ScalarSummary", "loss")
    assert first.op.get_attr("tag") == "train/loss" and first.dtype is tf.string and first.shape.as_list() == []
    assert tf.get_collection(tf.GraphKeys.SUMMARIES) == [first, second]
    assert tf.get_collection("mine") == [private]
    merged = tf.summary.merge_all()
    assert merged.op.name == "Merge/MergeSummary" and len(merged.op.inputs) == 2
    assert tf.summary.merge_all(key="nothing here") is None


def test_merge_rejects_duplicate_tags_and_histogram_rejects_nan():
    x = tf.placeholder(tf.float32, [None])
    loss = tf.summary.scalar("loss", tf.reduce_mean(x))
    twice = tf.summary.merge([loss, loss])
    histogram = tf.summary.histogram("h", x)
    with tf.Session() as sess:
        with pytest.raises(errors.InvalidArgumentError, match="Duplicate tag loss found in summary inputs"):
            sess.run(twice, {x: [1.0]})
        with pytest.raises(errors.InvalidArgumentError, match="Nan in summary histogram for: h"):
            sess.run(histogram, {x: [1.0, np.nan]})
        assert Summary.FromString(sess.run(histogram, {x: [1.0]})).value[0].histo.num == 1  # the session lives on


def test_summary_build_errors_name_the_problem():
    with pytest.raises(errors.InvalidArgumentError, match=r"tags and values not the same shape: \[\] != \[2\]"):
        tf.summary.scalar("v", tf.constant([1.0, 2.0]))
    with pytest.raises(errors.InvalidArgumentError, match="4-D .* 1, 3 or 4 channels, got \\[2,2\\]"):
        tf.summary.image("i", tf.constant([[1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(errors.InvalidArgumentError, match="a text summary takes a string tensor, got float32"):
        tf.summary.text("t", tf.constant(1.0))
    with pytest.raises(errors.InvalidArgumentError, match="input 0 of a summary merge must be a string tensor"):
        tf.summary.merge([tf.constant(1.0)])  # not a summary at all
    with pytest.raises(errors.InvalidArgumentError, match="a histogram summary takes a number tensor, got string"):
        tf.summary.histogram("s", tf.constant(["a"]))


def test_histogram_buckets_count_every_value_once():
    values = np.random.default_rng(0).normal(size=1000) * 10
    proto = histogram_proto(values)
    assert sum(proto.bucket) == 1000 and proto.num == 1000
    limits = np.array(proto.bucket_limit)
    assert (np.diff(limits) > 0).all()
    # each non-empty bucket's count is the number of values below its limit and at or above the previous one
    for index, (limit, count) in enumerate(zip(proto.bucket_limit, proto.bucket)):
        if count:
            lower = proto.bucket_limit[index - 1]
            assert count == ((values >= lower) & (values < limit)).sum()


def test_png_round_trips_through_pillow():
    rng = np.random.default_rng(1)
    for channels in (1, 3, 4):
        pixels = rng.integers(0, 256, size=(5, 7, channels), dtype=np.uint8)
        decoded = _pillow_png(png(pixels))
        np.testing.assert_array_equal(decoded.reshape(pixels.shape), pixels)


def test_graph_def_keeps_inputs_devices_and_attrs(tmp_path):
    a = tf.placeholder(tf.float32, [2, None], name="a")
    with tf.device("/cpu:0"):
        b = tf.split(a, 2, axis=0, name="parts")
    with tf.control_dependencies([a.op]):
        c = tf.add(b[1], 1.0, name="c")
    del c
    writer = tf.summary.FileWriter(tmp_path, tf.get_default_graph())
    writer.close()
    nodes = {n.name: n for n in EventAccumulator(str(tmp_path)).Reload().Graph().node}
    assert list(nodes["c"].input) == ["parts:1", "Const", "^a"] and nodes["parts"].device == "/cpu:0"
    assert [d.size for d in nodes["a"].attr["_output_shapes"].list.shape[0].dim] == [2, -1]
    assert nodes["parts"].attr["num_split"].i == 2


def test_add_summary_takes_bytes_arrays_and_messages(tmp_path):
    message = Summary(value=[Summary.Value(tag="t", simple_value=1.5)])
    with tf.summary.FileWriter(tmp_path) as writer:
        writer.add_summary(message.SerializeToString(), 1)
        writer.add_summary(np.array(message.SerializeToString(), dtype=object), 2)
        writer.add_summary(message, 3)
        with pytest.raises(TypeError, match="serialized Summary bytes or a Summary message"):
            writer.add_summary(1.5, 4)
    assert [e.step for e in EventAccumulator(str(tmp_path)).Reload().Scalars("t")] == [1, 2, 3]
