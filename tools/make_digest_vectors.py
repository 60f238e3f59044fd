"""Regenerate tests/vectors/digest_vectors.json: graph digest test vectors shared by every client.

Each vector is a serialized graphexec.v1.GraphDef (base64) with its expected chain state, digest and the
canonical bytes of each node (graphexec/digest.py documents the format). The Python and Node tests both
check every vector, so a port to another language can check itself against the same file.

Usage: PYTHONPATH=. python3 tools/make_digest_vectors.py [--out PATH]
"""
import argparse
import base64
import dataclasses
import json
import pathlib

import numpy as np

import graphexec as tf
from graphexec import digest, ir
from graphexec.rpc import convert
from graphexec.proto.v1 import graph_pb2

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "vectors" / "digest_vectors.json"
INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)
SHAPE = ir.ShapeAttr

SCALARS = {"none": None, "true": True, "false": False, "zero": 0, "minus_one": -1, "int64_max": INT64_MAX,
           "int64_min": INT64_MIN}
FLOATS = {"f_0_1": 0.1, "f_1e-7": 1e-7, "f_1e20": 1e20, "neg_zero": -0.0, "zero": 0.0, "one": 1.0,
          "third": 1 / 3, "inf": float("inf"), "neg_inf": float("-inf"), "nan": float("nan"),
          "denormal_min": 5e-324, "max": 1.7976931348623157e308}
STRINGS = {"empty": "", "ascii": 'plain "quoted" \\ /', "latin": "é ü ß", "cjk": "中文", "emoji": "😀 grinning",
           "control": "tab\tnewline\nnul\x00"}
# Keys whose UTF-8 (code point) order differs from UTF-16 order: "\ufb01" < "😀" by code point only.
ODD_KEYS = {"😀": 1, "\ufb01": 2, "z": 3, "Z": 4, "é": 5, "a": 6, "ab": 7, "_hidden": 8}
DTYPES = {d.name: d for d in (tf.float16, tf.float32, tf.float64, tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8,
                              tf.uint16, tf.bool, tf.string)}
SHAPES = {"unknown_rank": SHAPE(None), "scalar": SHAPE([]), "batch_by_3": SHAPE([None, 3]),
          "partial": SHAPE([2, None, None]), "empty_dim": SHAPE([0]), "big": SHAPE([2**40])}
TENSORS = {
    "float32": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
    "float64_scalar": np.array(0.1),
    "float16": np.array([1.5, -2.0, 65504.0], dtype=np.float16),
    "int8": np.array([-128, 0, 127], dtype=np.int8),
    "int16": np.array([[-32768], [32767]], dtype=np.int16),
    "int32_scalar": np.array(-7, dtype=np.int32),
    "int64": np.array([INT64_MIN, 0, INT64_MAX], dtype=np.int64),
    "uint8": np.array([0, 255], dtype=np.uint8),
    "uint16": np.array([65535, 1], dtype=np.uint16),
    "bool": np.array([[True, False], [False, True]]),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "string": np.array([[b"Hello, TensorFlow!", b""], ["é 😀".encode(), b"nul\x00"]], dtype=object),
    "string_scalar": np.array(b"graphexec", dtype=object),
}
LISTS = {
    "ints": (1, 2, 3), "int_extremes": (INT64_MIN, -1, 0, INT64_MAX), "floats": (0.1, -0.0, float("nan"), float("inf")),
    "strings": ("a", "é", "😀"), "empty": (), "nested": ((1, 1), (2, 2)), "bools": (True, False),
    "mixed": (1, 0.5, "x", None), "int_and_float": (1, 2.5), "dtypes": (tf.float32, tf.int64),
    "shapes": (SHAPE(None), SHAPE([None, 3])), "tensors": (TENSORS["int8"], TENSORS["bool"]), "nones": (None,),
    "list_of_empty": ((),),
}


def node(name, attrs=None, inputs=(), control_inputs=(), device="", source="", op="Attrs"):
    return ir.Node(name=name, op=op, inputs=tuple(inputs), control_inputs=tuple(control_inputs), attrs=attrs or {},
                   device=device, source=source)


def every_attr_kind():
    """Nodes with synthetic attributes (digests hash a GraphDef as it is, whether or not its ops exist)."""
    return [
        node("scalars", SCALARS, source="vectors.py:1"),
        node("floats", FLOATS, source="vectors.py:2"),
        node("strings", STRINGS, source="vectors.py:3"),
        node("odd_keys", ODD_KEYS),
        node("dtypes", DTYPES),
        node("shapes", SHAPES),
        node("tensors", TENSORS),
        node("lists", LISTS),
        node("no_attrs"),
        node("consumer", {"n": 1}, inputs=["scalars", "floats:0", "strings:1"], control_inputs=["dtypes", "shapes"],
             device="/device:GPU:0", source="/home/user/model.py:42", op="Consume"),
        node("ñame/😀", source="file name without a line"),
        node("colons", source="C:/odd:path/model.py:7"),
    ]


def api_graph():
    """A graph built with the Python API, as servers decode it (sources made relative to the repository)."""
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(1234)
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2), name="w")
        y = tf.matmul(x, w) + tf.constant([0.5, -1.0], name="b")
        out = tf.reshape(tf.reduce_sum(y * 2.5, axis=1, keepdims=True), [-1], name="out")
        tf.reduce_mean(out, name="total")
        tf.pad(x, [[1, 1], [0, 2]])
        tf.transpose(x, [1, 0])
        tf.cast(x, tf.int64)
        tf.nn.leaky_relu(x, alpha=0.1)
        tf.random_normal([2, 2], mean=0.25, stddev=1e-5, seed=7)
        tf.global_variables_initializer()
    relative = [dataclasses.replace(n, source=n.source.replace(f"{ROOT}/", "")) for n in graph.nodes()]
    return relative, graph.seed


def string_graph():
    """String constants and a string placeholder (tf.string content is length-prefixed before hashing)."""
    graph = tf.Graph()
    with graph.as_default():
        hello = tf.constant("Hello, TensorFlow!", name="hello")
        words = tf.placeholder(tf.string, [None], name="words")
        tf.strings.join([words, hello, tf.constant(["é", "😀"])], separator=" ", name="joined")
    relative = [dataclasses.replace(n, source=n.source.replace(f"{ROOT}/", "")) for n in graph.nodes()]
    return relative, graph.seed


def vector(name, nodes, seed=None, server_decodable=False):
    graph_def = convert.graph_to_proto(nodes, seed)
    data = graph_def.SerializeToString(deterministic=True)  # map entries (attrs) sorted: the file regenerates alike
    if graph_pb2.GraphDef.FromString(data) != graph_def:
        raise AssertionError(f"{name}: the GraphDef does not survive serialization")
    chain = digest.chain(digest.CHAIN_START, nodes)
    return {
        "name": name,
        "graph_def": base64.b64encode(data).decode(),
        "seed": None if seed is None else str(seed),
        "server_decodable": server_decodable,
        "chain": chain.hex(),
        "digest": digest.finish(chain, seed),
        "nodes": [{"name": n.name, "bytes": digest.node_bytes(n).hex()} for n in nodes],
    }


def vectors():
    one = [node("only", {"x": 1.5})]
    return {
        "about": "Graph digest test vectors (format: graphexec/digest.py). Each GraphDef must hash to `chain` "
                 "(32-byte chain state, hex) and `digest`; `nodes` lists the canonical bytes of each node. "
                 "Regenerate with tools/make_digest_vectors.py.",
        "chain_start": digest.CHAIN_START.hex(),
        "vectors": [
            vector("every attribute kind", every_attr_kind()),
            vector("empty graph", []),
            vector("empty graph, seed 0", [], seed=0),
            *(vector(f"one node, seed {s}", one, seed=s) for s in (None, 0, -1, 1234, INT64_MAX, INT64_MIN)),
            vector("built with the Python API", *api_graph(), server_decodable=True),
            vector("string constants", *string_graph(), server_decodable=True),
        ],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(vectors(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
