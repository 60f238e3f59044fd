"""The shared digest test vectors (tests/vectors/digest_vectors.json, also checked by the Node client)."""
import base64
import json
import pathlib

import numpy as np
import pytest

from graphexec import digest, ir
from graphexec.rpc import convert
from graphexec.rpc.graph_types import GraphTypes
from graphexec.proto.v1 import graph_pb2

VECTORS = json.loads((pathlib.Path(__file__).parents[1] / "vectors" / "digest_vectors.json").read_text("utf-8"))


def _graph_def(vector) -> graph_pb2.GraphDef:
    return graph_pb2.GraphDef.FromString(base64.b64decode(vector["graph_def"]))


def _seed(graph_def):
    return graph_def.seed if graph_def.HasField("seed") else None


def _nodes_as_sent(graph_def) -> list[ir.Node]:
    """IR nodes of a GraphDef as it is, without typing (digests do not ask whether the ops exist)."""
    return [ir.Node(name=n.name, op=n.op, inputs=tuple(n.inputs), control_inputs=tuple(n.control_inputs),
                    attrs=convert.attrs_from_proto(n.attrs), device=n.device,
                    source=f"{n.source.file}:{n.source.line}" if n.source.line else n.source.file)
            for n in graph_def.nodes]


def test_the_chain_starts_from_the_v2_domain_tag():
    assert VECTORS["chain_start"] == digest.CHAIN_START.hex()


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_vector_node_bytes_chain_and_digest(vector):
    graph_def = _graph_def(vector)
    nodes = _nodes_as_sent(graph_def)
    assert [n.name for n in nodes] == [n["name"] for n in vector["nodes"]]
    assert [digest.node_bytes(n).hex() for n in nodes] == [n["bytes"] for n in vector["nodes"]]
    assert digest.chain(digest.CHAIN_START, nodes).hex() == vector["chain"]
    assert _seed(graph_def) == (None if vector["seed"] is None else int(vector["seed"]))
    assert digest.graph_digest(nodes, _seed(graph_def)) == vector["digest"]
    if vector["server_decodable"]:  # as a server decodes it, typed by the ops' rules
        nodes = convert.nodes_from_proto(graph_def, GraphTypes())
        assert digest.graph_digest(nodes, _seed(graph_def)) == vector["digest"]


def test_the_vectors_cover_every_attribute_kind():
    kinds = set()
    for vector in VECTORS["vectors"]:
        for node in _graph_def(vector).nodes:
            stack = list(node.attrs.values())
            while stack:
                value = stack.pop()
                kinds.add(value.WhichOneof("value"))
                if value.WhichOneof("value") == "list":
                    stack.extend(value.list.values)
    assert kinds == {f.name for f in graph_pb2.AttrValue.DESCRIPTOR.oneofs_by_name["value"].fields}


def test_canonical_values_by_hand():
    nan_bits = bytes.fromhex("000000000000f87f")
    assert digest.canonical_attr(None) == b"\x00"
    assert digest.canonical_attr(True) == b"\x01\x01"
    assert digest.canonical_attr(-2) == b"\x02" + (-2).to_bytes(8, "little", signed=True)
    assert digest.canonical_attr(np.int16(-2)) == digest.canonical_attr(-2)
    assert digest.canonical_attr(-0.0) == b"\x03" + bytes(7) + b"\x80"
    assert digest.canonical_attr(float("nan")) == b"\x03" + nan_bits
    assert digest.canonical_attr(-np.float64("nan")) == b"\x03" + nan_bits  # every NaN is the canonical one
    assert digest.canonical_attr("é") == b"\x04\x02\x00\x00\x00\xc3\xa9"
    assert digest.canonical_attr(ir.ShapeAttr(None)) == b"\x06\x01\x00\x00\x00\x00"
    assert digest.canonical_attr(()) == digest.canonical_attr([]) == b"\x08\x00\x00\x00\x00"
    big_endian = np.array([1, 2], dtype=">i4")
    assert digest.canonical_attr(big_endian) == digest.canonical_attr(big_endian.astype("<i4"))


def test_integers_beyond_int64_are_refused():
    with pytest.raises(OverflowError, match="int64"):
        digest.canonical_attr(2**63)
