"""Content digests of graphs: stable across processes, machines and languages, extendable as a graph grows.

The digest is a sha256 chain over canonical node bytes, then the seed:

    h_0   = sha256(b"graphexec-graph-v2")
    h_i   = sha256(h_{i-1} || node_bytes(node_i))        (32-byte chain state after i nodes)
    final = hex(sha256(h_n || seed_bytes))

Because it is a chain, a client that extends a graph sends only the new nodes plus the chain state of the
prefix the server already holds. The bytes are a plain length-prefixed binary encoding, so any language
can produce them from a graphexec.v1.GraphDef without imitating another language's number formatting.
Shared test vectors: tests/vectors/digest_vectors.json (regenerate with tools/make_digest_vectors.py).

Primitives (all little-endian):
    u32     4 bytes, unsigned                     i64  8 bytes, two's complement
    f64     8 bytes, IEEE-754 binary64; -0.0 keeps its sign bit; every NaN is written as the one
            canonical quiet NaN 0x7FF8000000000000 (bytes 00 00 00 00 00 00 F8 7F)
    str     u32 byte length, then the UTF-8 bytes (no terminator, no normalization)
    strs    u32 count, then each str

node_bytes = str name, str op, strs inputs, strs control_inputs,
             u32 attr count, then per attr sorted by key (bytewise UTF-8, i.e. by code point): str key, value,
             str device, str source (the IR's "file:line", i.e. SourceLocation file + ":" + line when
             line != 0, else file alone; "" when absent)

value = one kind byte, then its payload:
    0x00 none      (nothing)
    0x01 bool      1 byte, 0 or 1
    0x02 int       i64
    0x03 float     f64
    0x04 string    str
    0x05 dtype     str name ("float32", "int64", "bool", ...: graphexec.v1.DataType without the prefix, lower case)
    0x06 shape     1 byte unknown_rank (0/1), u32 rank, i64 per dim (-1 = unknown); rank 0 when unknown_rank
    0x07 tensor    str dtype name, u32 rank, i64 per dim, then 32 bytes: sha256 of the row-major little-endian
                   content (graphexec.v1.Tensor.content; bool one byte per element; string: per element a
                   u32 byte length then the bytes)
    0x08 list      u32 count, then each item as a value (kind byte included)
A list attr is 0x08 however the wire carries it (IntList, FloatList, StringList or AttrList); an empty list
is 08 00 00 00 00.

seed_bytes = 00 when the graph has no seed, else 01 followed by the seed as i64.
"""
from __future__ import annotations

import hashlib
import math
import struct
import sys

import numpy as np

from graphexec.dtypes import DType, string_content
from graphexec.ir import ShapeAttr

CHAIN_START = hashlib.sha256(b"graphexec-graph-v2").digest()

NONE, BOOL, INT, FLOAT, STRING, DTYPE, SHAPE, TENSOR, LIST = (bytes([kind]) for kind in range(9))

_u32 = struct.Struct("<I").pack
_i64 = struct.Struct("<q").pack
_f64 = struct.Struct("<d").pack
_TRUE, _FALSE = BOOL + b"\x01", BOOL + b"\x00"
_CANONICAL_NAN = FLOAT + b"\x00\x00\x00\x00\x00\x00\xf8\x7f"
_NO_SEED = b"\x00"
_KNOWN_RANK, _UNKNOWN_RANK = b"\x00", b"\x01\x00\x00\x00\x00"
# Op names, attr keys and dtype names recur in every graph: encode each once per process (bounded, since
# a server also hashes whatever keys its clients send).
_RECURRING_LIMIT = 4096
_recurring: dict[str, bytes] = {}
_dtype_names: dict = {}  # np.dtype -> encoded name (numpy computes .name in Python on every access)


def _str(text: str) -> bytes:
    data = text.encode()
    return _u32(len(data)) + data


def _cached_str(cache: dict, text: str) -> bytes:
    """`_str(text)`, kept in `cache` while it holds fewer than _RECURRING_LIMIT strings."""
    encoded = cache.get(text)
    if encoded is None:
        encoded = _str(text)
        if len(cache) < _RECURRING_LIMIT:
            cache[text] = encoded
    return encoded


def _recurring_str(text: str) -> bytes:
    return _cached_str(_recurring, text)


_sources: dict[str, bytes] = {}  # source lines, kept apart so that they never crowd op names out of _recurring


def _strs(texts) -> bytes:
    return _u32(len(texts)) + b"".join([_str(t) for t in texts])


def _int(value) -> bytes:
    try:
        return INT + _i64(value)
    except struct.error:
        raise OverflowError(f"integer attribute {value} is outside the int64 range graphs carry") from None


def _float(value) -> bytes:
    return _CANONICAL_NAN if math.isnan(value) else FLOAT + _f64(value)


def _dims(dims) -> bytes:
    return _u32(len(dims)) + b"".join([_i64(-1 if d is None else d) for d in dims])


def _shape(value: ShapeAttr) -> bytes:
    return SHAPE + (_UNKNOWN_RANK if value.unknown_rank else _KNOWN_RANK + _dims(value))


def _tensor(value: np.ndarray) -> bytes:
    dtype = value.dtype
    name = _dtype_names.get(dtype)
    if name is None:
        name = _dtype_names[dtype] = _str("string" if dtype == object else dtype.name)
    little = dtype.byteorder in "<|" or (dtype.byteorder == "=" and sys.byteorder == "little")
    if dtype == object:  # tf.string: the wire's length-prefixed content
        return TENSOR + name + _dims(value.shape) + hashlib.sha256(string_content(value)).digest()
    data = value.tobytes() if little else value.astype(dtype.newbyteorder("<")).tobytes()  # tobytes is C order
    return TENSOR + name + _dims(value.shape) + hashlib.sha256(data).digest()


def _list(values) -> bytes:
    return LIST + _u32(len(values)) + b"".join([canonical_attr(v) for v in values])


# Exact-type dispatch for the common cases; subclasses and numpy scalars take the isinstance path.
_BY_TYPE = {
    bool: lambda v: _TRUE if v else _FALSE, int: _int, float: _float, str: lambda v: STRING + _str(v),
    type(None): lambda v: NONE, DType: lambda v: DTYPE + _recurring_str(v.name), ShapeAttr: _shape,
    np.ndarray: _tensor, tuple: _list, list: _list,
}


def canonical_attr(value) -> bytes:
    """The canonical bytes of one attribute value: its kind byte and payload (see the module docstring)."""
    encode = _BY_TYPE.get(type(value))
    if encode is not None:
        return encode(value)
    if value is None:
        return NONE
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, str):
        return STRING + _str(value)
    if isinstance(value, (int, np.integer)):
        return _int(int(value))
    if isinstance(value, (float, np.floating)):
        return _float(float(value))
    if isinstance(value, DType):
        return DTYPE + _recurring_str(value.name)
    if isinstance(value, ShapeAttr):
        return _shape(value)
    if isinstance(value, np.ndarray):
        return _tensor(value)
    if isinstance(value, (tuple, list)):
        return _list(value)
    raise TypeError(f"attribute value of type {type(value).__name__} cannot be serialized: {value!r}")


_NOTHING = _u32(0)  # an empty string, list or attr map


def node_bytes(node) -> bytes:
    """The canonical bytes of one node (see the module docstring). Hot: every uploaded node is hashed
    on both ends, so the common empty fields take a constant and a source line (shared by the ops one
    line of a program makes) is encoded once."""
    attrs, control_inputs, device = node.attrs, node.control_inputs, node.device
    parts = [_str(node.name), _recurring_str(node.op), _strs(node.inputs),
             _strs(control_inputs) if control_inputs else _NOTHING]
    if attrs:
        parts.append(_u32(len(attrs)))
        for key in sorted(attrs):  # str order is code point order, which is UTF-8 byte order
            parts.append(_recurring_str(key))
            parts.append(canonical_attr(attrs[key]))
    else:
        parts.append(_NOTHING)
    parts.append(_str(device) if device else _NOTHING)
    parts.append(_cached_str(_sources, node.source))
    return b"".join(parts)


def seed_bytes(seed) -> bytes:
    return _NO_SEED if seed is None else b"\x01" + _i64(seed)


def chain(start: bytes, nodes) -> bytes:
    h = start
    for node in nodes:
        h = hashlib.sha256(h + node_bytes(node)).digest()
    return h


def finish(h: bytes, seed) -> str:
    return hashlib.sha256(h + seed_bytes(seed)).hexdigest()


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
