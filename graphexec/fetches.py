"""Flattening nested fetches (lists, tuples, dicts, namedtuples) to tensor and target names, and
rebuilding the same structure from the flat results."""
from __future__ import annotations

from graphexec.framework import Operation, Tensor


class FetchMapper:
    def __init__(self, graph, fetches):
        self.graph = graph
        self.tensor_names: list[str] = []
        self.target_names: list[str] = []
        self._index: dict[str, int] = {}
        self._structure = self._flatten(fetches)

    def _element(self, fetch):
        if hasattr(fetch, "_as_graph_element"):
            fetch = fetch._as_graph_element()
        if isinstance(fetch, str):
            fetch = self.graph.as_graph_element(fetch)
        if isinstance(fetch, Tensor):
            if fetch.graph is not self.graph:
                raise ValueError(f"Fetch argument {fetch!r} is not an element of this graph.")
            if fetch.name not in self._index:
                self._index[fetch.name] = len(self.tensor_names)
                self.tensor_names.append(fetch.name)
            return ("tensor", self._index[fetch.name])
        if isinstance(fetch, Operation):
            if fetch.graph is not self.graph:
                raise ValueError(f"Fetch argument {fetch!r} is not an element of this graph.")
            if fetch.name not in self.target_names:
                self.target_names.append(fetch.name)
            return ("op", None)
        raise TypeError(f"Fetch argument {fetch!r} has invalid type {type(fetch).__name__}, must be a string "
                        f"or Tensor. (Can not convert a {type(fetch).__name__} into a Tensor or Operation.)")

    def _flatten(self, fetch):
        if fetch is None:
            raise TypeError("Fetch argument None has invalid type <class 'NoneType'>")
        if isinstance(fetch, dict):
            return ("dict", type(fetch), [(k, self._flatten(v)) for k, v in fetch.items()])
        if isinstance(fetch, tuple) and hasattr(fetch, "_fields"):
            # a fetched SparseTensor comes back as a SparseTensorValue (its `value_type`), as in TF
            value_type = getattr(type(fetch), "value_type", type(fetch))
            return ("namedtuple", value_type, [self._flatten(v) for v in fetch])
        if isinstance(fetch, (list, tuple)):
            return ("seq", type(fetch), [self._flatten(v) for v in fetch])
        return self._element(fetch)

    def build(self, results):
        return self._build(self._structure, results)

    def _build(self, node, results):
        kind = node[0]
        if kind == "tensor":
            return results[node[1]]
        if kind == "op":
            return None
        if kind == "dict":
            return node[1]((k, self._build(v, results)) for k, v in node[2])
        if kind == "namedtuple":
            return node[1](*[self._build(v, results) for v in node[2]])
        return node[1](self._build(v, results) for v in node[2])
