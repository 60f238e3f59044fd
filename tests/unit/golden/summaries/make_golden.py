"""Regenerate summaries.json: TF1 summary ops (scalar, histogram, image, text, merge) run under real TensorFlow.

Usage (needs tensorflow and Pillow): python3 tests/unit/golden/summaries/make_golden.py
tests/unit/test_summary.py runs the same program (`program`, written against the TF1 API so that graphexec
and tf.compat.v1 both run it) with graphexec and compares the decoded Summary messages (`describe`).
Images are compared as decoded pixels: PNG encoders may compress the same pixels differently.
"""
import io
import json
import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "summaries.json"
IMAGES = np.array([[[[-1], [0], [2]], [[0.5], [1], [1]]],
                   [[[0], [0.5], [1]], [[0.25], [0], [0.75]]]], np.float32)
RGB = np.array([[[[0.0, 0.5, 1.0], [np.nan, 0.2, 0.1]], [[0.3, 0.3, 0.3], [1.0, 0.0, 0.0]]]], np.float32)
VALUES = [1.0, 2.0, 3.5, -1.0, 0.0, 1e-13, 250.0, -0.001]


def program(tf):
    """(fetches dict, feed dict builder) of the program; `tf` is graphexec or tf.compat.v1."""
    x = tf.placeholder(tf.float32, [None], name="x")
    images = tf.placeholder(tf.float32, [2, 2, 3, 1], name="images")
    with tf.name_scope("train"):
        loss = tf.summary.scalar("loss", tf.reduce_mean(x))
    fetches = {
        "scalar": loss,
        "family": tf.summary.scalar("rate", tf.constant(0.5), family="optimizer"),
        "histogram": tf.summary.histogram("weights", x),
        "int_histogram": tf.summary.histogram("counts", tf.constant([[1, 2], [2, 7]])),
        "images": tf.summary.image("pics", images, max_outputs=3),
        "one_image": tf.summary.image("one", images, max_outputs=1),
        "rgb_bad_pixel": tf.summary.image("rgb", tf.constant(RGB)),
        "uint8_image": tf.summary.image("raw", tf.constant(np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3) * 20)),
        "text": tf.summary.text("note", tf.constant(["hello", "world"])),
    }
    fetches["merged"] = tf.summary.merge_all()
    return fetches, {x: VALUES, images: IMAGES}


def describe(serialized, summary_class, decode_png):
    """A JSON-able description of serialized Summary bytes."""
    out = []
    for value in summary_class.FromString(serialized).value:
        kind = value.WhichOneof("value")
        entry = {"tag": value.tag, "kind": kind, "plugin": value.metadata.plugin_data.plugin_name}
        if kind == "simple_value":
            entry["simple_value"] = value.simple_value
        elif kind == "histo":
            h = value.histo
            entry.update(min=h.min, max=h.max, num=h.num, sum=h.sum, sum_squares=h.sum_squares,
                         bucket_limit=list(h.bucket_limit), bucket=list(h.bucket))
        elif kind == "image":
            i = value.image
            entry.update(height=i.height, width=i.width, colorspace=i.colorspace,
                         pixels=decode_png(i.encoded_image_string).tolist())
        elif kind == "tensor":
            t = value.tensor
            entry.update(dtype=t.dtype, shape=[d.size for d in t.tensor_shape.dim],
                         strings=[s.decode() for s in t.string_val])
        out.append(entry)
    return out


def pillow_png(data):
    from PIL import Image
    return np.array(Image.open(io.BytesIO(data)))


def main():
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    fetches, feed = program(tf)
    with tf.Session() as sess:
        results = sess.run(fetches, feed)
    golden = {key: describe(value, tf.Summary, pillow_png) for key, value in results.items()}
    OUT.write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
