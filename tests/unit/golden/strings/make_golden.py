"""Regenerate hello_strings.json: a TF1 "hello world" string program run under real TensorFlow.

Usage (needs tensorflow): python3 tests/unit/golden/strings/make_golden.py
tests/unit/test_ops_string.py runs the same program (`program`, written against the TF1 API so that
graphexec and tf.compat.v1 both run it) with graphexec and compares. Bytes are stored as hex.
"""
import json
import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "hello_strings.json"
FEED = [b"graph exec", "\u00e9t\u00e9 ok".encode(), b"a,,b"]


def program(tf):
    """(fetches dict, feed placeholder) of the program; `tf` is graphexec or tf.compat.v1."""
    hello = tf.constant("Hello, TensorFlow!")
    words = tf.placeholder(tf.string, [None], name="words")
    split = tf.string_split(words, delimiter=" ,")
    fetches = {
        "hello": hello,
        "words": words,
        "joined": tf.strings.join([words, hello], separator=" | "),
        "string_join": tf.string_join(["x", words, "y"]),
        "length": tf.strings.length(words),
        "chars": tf.strings.length(words, unit="UTF8_CHAR"),
        "upper": tf.strings.upper(words),
        "lower": tf.strings.lower(hello),
        "regex": tf.strings.regex_replace(words, "[aeiou]", "_"),
        "substr": tf.substr(words, 1, 3),
        "substr_from_end": tf.substr(words, -3, 2),
        "substr_chars": tf.strings.substr(words, 1, 2, unit="UTF8_CHAR"),
        "equal": tf.equal(words, "a,,b"),
        "as_string_f": tf.as_string(tf.constant([1.5, -0.25, 1e10])),
        "as_string_i": tf.as_string(tf.constant([7, -12]), width=4, fill="0"),
        "as_string_b": tf.as_string(tf.constant([True, False])),
        "as_string_e": tf.as_string(tf.constant([123.456]), precision=2, scientific=True),
        "to_number": tf.strings.to_number(tf.constant(["1.5", "-2", "3e2"])),
        "to_int": tf.strings.to_number(tf.constant(["42", "-7"]), out_type=tf.int64),
        "split_indices": split.indices, "split_values": split.values, "split_shape": split.dense_shape,
        "split_all_indices": tf.string_split(["a  b", ""], skip_empty=False).indices,
        "split_all_values": tf.string_split(["a  b", ""], skip_empty=False).values,
    }
    return fetches, words


def encode(value):
    if isinstance(value, bytes):  # a string scalar is fetched as bytes
        return {"dtype": "string", "shape": [], "hex": [value.hex()], "scalar_bytes": True}
    array = np.asarray(value)
    if array.dtype == object:
        return {"dtype": "string", "shape": list(array.shape), "hex": [v.hex() for v in array.reshape(-1)]}
    return {"dtype": array.dtype.name, "shape": list(array.shape), "values": array.reshape(-1).tolist()}


def main():
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    fetches, words = program(tf)
    with tf.Session() as sess:
        results = sess.run(fetches, {words: FEED})
    OUT.write_text(json.dumps({k: encode(v) for k, v in sorted(results.items())}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
