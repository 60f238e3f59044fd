"""The graph IR: immutable plain data that compiler passes map to new IR, and that prints like a listing.

A `Program` is what the compiler works on: the nodes plus the endpoints of one run (feeds, fetches,
targets). Tensor names are "node:index"; shapes are tuples whose dims may be None, or None for an
unknown rank. A node's attrs are an `Attrs`: immutable and hashable, so passes can key on nodes.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from graphexec.dtypes import DType, string_content

Shape = tuple | None


class ShapeAttr(tuple):
    """A shape-valued attribute (dims may be None); a distinct type so it round-trips as a shape.

    ShapeAttr(None) (unknown rank) is not equal to ShapeAttr([]) (a scalar) although both hold ().
    """

    unknown_rank = False

    def __new__(cls, dims):
        if dims is None:
            obj = super().__new__(cls, ())
            obj.unknown_rank = True
            return obj
        return super().__new__(cls, (None if d is None else int(d) for d in dims))

    @property
    def dims(self):
        return None if self.unknown_rank else tuple(self)

    def __eq__(self, other):
        if isinstance(other, ShapeAttr):
            return self.unknown_rank == other.unknown_rank and tuple.__eq__(self, other)
        return not self.unknown_rank and tuple.__eq__(self, other)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(ShapeAttr) if self.unknown_rank else tuple.__hash__(self)

    def __repr__(self):
        return "ShapeAttr(None)" if self.unknown_rank else f"ShapeAttr({list(self)})"


def _fingerprint(value):
    """A hashable stand-in for an attr value: values `_same` as each other have equal fingerprints."""
    if isinstance(value, np.ndarray):
        return ("tensor", value.dtype.str, value.shape, hash(_content(value)))
    if isinstance(value, (list, tuple)) and not isinstance(value, ShapeAttr):
        return (type(value), *(_fingerprint(v) for v in value))
    if isinstance(value, Mapping) and not isinstance(value, Attrs):
        return ("map", *sorted((k, _fingerprint(v)) for k, v in value.items()))
    return (type(value), value)  # the type keeps 1, 1.0 and True apart


def _content(array: np.ndarray) -> bytes:
    """An array's elements as bytes (a string tensor's own bytes, not its object pointers)."""
    return string_content(array) if array.dtype == object else array.tobytes()


def _same(a, b) -> bool:
    """Attr values are the same: same type and content (arrays: dtype, shape and bytes)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a is b or (a.dtype == b.dtype and a.shape == b.shape and _content(a) == _content(b))
    if isinstance(a, (list, tuple)) and not isinstance(a, ShapeAttr):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and not isinstance(a, Attrs):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    return a == b


class Attrs(Mapping):
    """A node's attributes: an immutable, hashable mapping with sorted keys.

    Kernels take it as `**attrs` and rules index `attrs[name]`. Equality compares values by type and
    content (arrays by dtype, shape and bytes), so CSE can key nodes on (op, inputs, attrs).
    """

    __slots__ = ("_items", "_hash")

    def __init__(self, items: Mapping | tuple = ()):
        items = dict(items)
        self._items = dict(sorted(items.items())) if len(items) > 1 else items
        self._hash = None  # computed on first use: a constant's bytes are hashed once per node

    @classmethod
    def in_key_order(cls, items: dict) -> Attrs:
        """Adopt `items`, a fresh dict whose keys are already sorted (a decoder builds them so)."""
        attrs = cls.__new__(cls)
        attrs._items, attrs._hash = items, None
        return attrs

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def __contains__(self, key):
        return key in self._items

    def get(self, key, default=None):
        return self._items.get(key, default)

    def keys(self):
        return self._items.keys()

    def items(self):
        return self._items.items()

    def values(self):
        return self._items.values()

    def __hash__(self):
        if self._hash is None:  # only the hash is kept: big graphs make millions of these
            self._hash = hash(tuple([(k, _fingerprint(v)) for k, v in self._items.items()]))
        return self._hash

    def __eq__(self, other):
        if self is other:
            return True
        if not isinstance(other, Attrs):
            return self == Attrs(other) if isinstance(other, Mapping) else NotImplemented
        mine, theirs = self._items, other._items
        if hash(self) != hash(other) or mine.keys() != theirs.keys():
            return False
        for key, value in mine.items():
            other_value = theirs[key]
            if value is not other_value and not _same(value, other_value):
                return False
        return True

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __repr__(self):
        return f"Attrs({self._items!r})"


EMPTY_ATTRS = Attrs()


def as_attrs(attrs) -> Attrs:
    return attrs if isinstance(attrs, Attrs) else Attrs(attrs) if attrs else EMPTY_ATTRS


@dataclass(frozen=True, slots=True)
class TensorType:
    """Static type of one output: dtype plus a possibly partial shape."""

    dtype: DType
    shape: Shape

    def __str__(self) -> str:
        return f"{self.dtype.name}{format_shape(self.shape)}"


@dataclass(frozen=True, slots=True)
class Node:
    """One operation. Plain-dict attrs are wrapped as `Attrs` on construction."""

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    control_inputs: tuple[str, ...] = ()
    attrs: Attrs = EMPTY_ATTRS
    outputs: tuple[TensorType, ...] = ()
    device: str = ""
    source: str = ""

    def __post_init__(self):
        if type(self.attrs) is not Attrs:
            object.__setattr__(self, "attrs", as_attrs(self.attrs))

    def __str__(self) -> str:
        return self.format()

    def format(self, typed: bool = True) -> str:
        """`%y: float32[4] = Add(%x, %c) {attr=value} ^ctrl`; without types inside a fused body."""
        head = f"%{self.name}: {', '.join(str(t) for t in self.outputs)}" if typed else f"%{self.name}"
        args = ", ".join("%" + format_tensor(i) for i in self.inputs)
        ctrl = " ^" + " ^".join(self.control_inputs) if self.control_inputs else ""
        return f"{head} = {self.op}({args}){format_attrs(self.attrs)}{ctrl}"


@dataclass(frozen=True, slots=True)
class Subprogram:
    """The body of a fused node: `nodes` compute in order from the parameters `params` (the fused node's
    inputs, in order); the last node's output is the result. A body node's inputs name a parameter
    ("p0") or an earlier body node ("f1"). Prints as `{ %f0 = Mul(%p0, %p1); %f1 = Add(%f0, %p1) }`."""

    params: tuple[str, ...]
    nodes: tuple[Node, ...]

    @classmethod
    def from_operands(cls, num_params: int, steps) -> Subprogram:
        """From (op, operands, attrs, output type) rows whose operands are >= 0 for parameter i and
        < 0 for the result of row -i-1 (the compact encoding of the wire format and the executor)."""
        params = tuple(f"p{i}" for i in range(num_params))
        nodes: list[Node] = []
        for op, operands, attrs, out_type in steps:
            inputs = tuple([params[o] if o >= 0 else nodes[-o - 1].name for o in operands])
            nodes.append(Node(f"f{len(nodes)}", op, inputs, (), attrs, (out_type,)))
        return cls(params, tuple(nodes))

    def operands(self) -> tuple[tuple[int, ...], ...]:
        """Each node's inputs in the compact encoding of `from_operands`."""
        index = {p: i for i, p in enumerate(self.params)}
        index.update((n.name, -i - 1) for i, n in enumerate(self.nodes))
        return tuple(tuple(index[i] for i in n.inputs) for n in self.nodes)

    @property
    def result_type(self) -> TensorType:
        return self.nodes[-1].outputs[0]

    def __str__(self) -> str:
        return "{ " + "; ".join(n.format(typed=False) for n in self.nodes) + " }"


@dataclass(frozen=True, slots=True)
class Program:
    """Nodes in topological order plus the endpoints of one run."""

    nodes: tuple[Node, ...]
    feeds: tuple[str, ...] = ()
    fetches: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    seed: int | None = None

    def by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    def with_nodes(self, nodes, **changes) -> Program:
        return replace(self, nodes=tuple(nodes), **changes)

    def __str__(self) -> str:
        head = f"program(feeds=[{', '.join(self.feeds)}]) -> [{', '.join(self.fetches)}]"
        if self.targets:
            head += f" targets=[{', '.join(self.targets)}]"
        return "\n".join([head, *("  " + str(n) for n in self.nodes)])


@functools.lru_cache(maxsize=1 << 20)
def split_tensor_name(name: str) -> tuple[str, int]:
    """"node:1" -> ("node", 1); "node" -> ("node", 0)."""
    node, sep, index = name.rpartition(":")
    if sep and index.isdigit():
        return node, int(index)
    return name, 0


def format_tensor(name: str) -> str:
    """"x:0" prints as "x"; other outputs keep their index ("split:1")."""
    return name[:-2] if name.endswith(":0") else name


def num_elements(shape: Shape) -> int | None:
    """Elements of a tensor of `shape`; None when a dim or the rank is unknown."""
    if shape is None or None in shape:
        return None
    n = 1
    for d in shape:
        n *= d
    return n


def format_shape(shape: Shape) -> str:
    if shape is None:
        return "[*]"
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def format_attrs(attrs: Mapping[str, Any]) -> str:
    """" {k=v ...}" for the public attrs, then any sub-program as a block; "" when there is nothing."""
    shown = [(k, v) for k, v in attrs.items() if not k.startswith("_")]
    plain = " ".join(f"{k}={format_attr(v)}" for k, v in shown if not isinstance(v, Subprogram))
    blocks = "".join(f" {v}" for _, v in shown if isinstance(v, Subprogram))
    return (f" {{{plain}}}" if plain else "") + blocks


def format_attr(value) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return np.array2string(value, separator=",").replace("\n", "")
        return f"<{value.dtype}{list(value.shape)}>"
    if isinstance(value, DType):
        return value.name
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return "(" + ",".join(format_attr(v) for v in value) + ")"
    return repr(value)
