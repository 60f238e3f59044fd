"""The graph IR: immutable plain data that compiler passes map to new IR, and that prints like a listing.

A `Program` is what the compiler works on: the nodes plus the endpoints of one run (feeds, fetches,
targets). Tensor names are "node:index"; shapes are tuples whose dims may be None, or None for an
unknown rank.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from graphexec.dtypes import DType

Shape = tuple | None


class ShapeAttr(tuple):
    """A shape-valued attribute (dims may be None); a distinct type so it round-trips as a shape."""

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

    def __repr__(self):
        return "ShapeAttr(None)" if self.unknown_rank else f"ShapeAttr({list(self)})"


@dataclass(frozen=True, slots=True)
class TensorType:
    """Static type of one output: dtype plus a possibly partial shape."""

    dtype: DType
    shape: Shape

    def __str__(self) -> str:
        return f"{self.dtype.name}{format_shape(self.shape)}"


@dataclass(frozen=True, slots=True)
class Node:
    """One operation. `attrs` is never mutated after construction."""

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    control_inputs: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[TensorType, ...] = ()
    device: str = ""
    source: str = ""

    def __str__(self) -> str:
        outs = ", ".join(str(t) for t in self.outputs)
        args = ", ".join(f"%{i}" for i in self.inputs)
        attrs = " ".join(f"{k}={format_attr(v)}" for k, v in sorted(self.attrs.items()) if not k.startswith("_"))
        ctrl = " ^" + " ^".join(self.control_inputs) if self.control_inputs else ""
        return f"%{self.name}: {outs} = {self.op}({args}){' {' + attrs + '}' if attrs else ''}{ctrl}"


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


def format_shape(shape: Shape) -> str:
    if shape is None:
        return "[*]"
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


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
