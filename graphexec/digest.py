"""Content digests of graphs: stable across processes and machines, extendable as a graph grows.

digest(nodes[0..n]) = sha256 chain: h_0 = sha256("graphexec-graph-v1"), h_i = sha256(h_{i-1} || node_i),
where node_i is the canonical JSON of the node (name, op, inputs, control inputs, attrs, device,
source; tensors by dtype, shape and the sha256 of their little-endian bytes). The graph seed is folded
in last. Because it is a chain, a client that extends a graph can send only the new nodes plus the
digest of the prefix the server already holds.
"""
from __future__ import annotations

import hashlib
import json
import sys

import numpy as np

from graphexec.dtypes import DType
from graphexec.ir import ShapeAttr

CHAIN_START = hashlib.sha256(b"graphexec-graph-v1").digest()
# One encoder for every node: json.dumps with options builds a new encoder per call (same output).
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
_DTYPE_NAMES: dict = {}  # np.dtype -> name (numpy computes .name in Python on every access)


def canonical_attr(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return ["i", int(value)]
    if isinstance(value, (float, np.floating)):
        return ["f", repr(float(value))]
    if isinstance(value, DType):
        return ["dtype", value.name]
    if isinstance(value, ShapeAttr):
        return ["shape", None if value.unknown_rank else list(value)]
    if isinstance(value, np.ndarray):
        return _tensor_doc(value)
    if isinstance(value, (tuple, list)):
        return ["list", [canonical_attr(v) for v in value]]
    raise TypeError(f"attribute value of type {type(value).__name__} cannot be serialized: {value!r}")


def _tensor_doc(value: np.ndarray) -> list:
    dtype = value.dtype
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = dtype.name
    little = dtype.byteorder in "<|" or (dtype.byteorder == "=" and sys.byteorder == "little")
    data = value.tobytes() if little else value.astype(dtype.newbyteorder("<")).tobytes()  # tobytes is C order
    return ["tensor", name, list(value.shape), hashlib.sha256(data).hexdigest()]


def node_bytes(node) -> bytes:
    doc = [node.name, node.op, list(node.inputs), list(node.control_inputs),
           sorted([(k, canonical_attr(v)) for k, v in node.attrs.items()]), node.device, node.source]
    return _encode_json(doc).encode()


def chain(start: bytes, nodes) -> bytes:
    h = start
    for node in nodes:
        h = hashlib.sha256(h + node_bytes(node)).digest()
    return h


def finish(h: bytes, seed) -> str:
    return hashlib.sha256(h + repr(seed).encode()).hexdigest()


def graph_digest(nodes, seed=None) -> str:
    return finish(chain(CHAIN_START, nodes), seed)


class NodeDigester:
    """The chain state of a growing node list: each node is hashed once, as it is added."""

    def __init__(self):
        self._state = CHAIN_START

    def add(self, node) -> None:
        """Extend the chain by one node (graphs call this as each op is created)."""
        self._state = hashlib.sha256(self._state + node_bytes(node)).digest()

    def digest(self, seed) -> str:
        return finish(self._state, seed)

    def chain_state(self) -> bytes:
        return self._state
