"""The functions of `Dataset.map` and `Dataset.filter`: traced once into a private graph, with one
placeholder per component of the input element, and run by an in-process session of that graph.

They run where the pipeline runs, in the client's process (see docs/architecture.md, "Input
pipelines"): the server never sees them. A function that reads a tensor of the user's graph (a variable,
a placeholder) fails at trace time, as the tensor is not in the private graph."""
from __future__ import annotations

import threading

from graphexec import dtypes
from graphexec.data.structure import Spec, as_array, flatten, pack_sequence_as, spec_of
from graphexec.framework import Graph, Tensor
from graphexec.ops.array_ops import placeholder
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.string_ops import SparseTensor
from graphexec.session import Session


class GraphFunction:
    def __init__(self, fn, structure, what: str):
        self.graph = Graph()
        self._lock = threading.Lock()  # one session per function; runs of parallel calls take turns on it
        specs = flatten(structure)
        with self.graph.as_default():
            self._args = [placeholder(s.dtype, s.shape, name=f"arg{i}") for i, s in enumerate(specs)]
            element = pack_sequence_as(structure, self._args)
            result = fn(*element) if isinstance(element, tuple) else fn(element)
            if isinstance(result, list):
                result = tuple(result)
            if isinstance(result, SparseTensor):
                raise NotImplementedError(f"{what}: a SparseTensor element is not supported by graphexec's tf.data")
            leaves = [r if isinstance(r, Tensor) else convert_to_tensor(as_array(r)) for r in flatten(result)]
        self.structure = pack_sequence_as(result, [spec_of(t) for t in leaves])
        self._session = Session(graph=self.graph)
        self._call = self._session.make_callable(leaves, feed_list=self._args)

    def __call__(self, element):
        with self._lock:
            values = self._call(*flatten(element))
        return pack_sequence_as(self.structure, [as_array(v, s.dtype) for v, s in zip(values, flatten(self.structure))])


def predicate(fn, structure) -> GraphFunction:
    function = GraphFunction(fn, structure, "filter")
    spec = function.structure
    if not isinstance(spec, Spec) or spec.dtype is not dtypes.bool or spec.shape not in ((), None):
        raise ValueError(f"filter's predicate must return a scalar tf.bool tensor, got {spec}")
    return function
