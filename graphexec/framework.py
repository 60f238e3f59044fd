"""The user-facing, growable TF1 graph: Graph, Operation, Tensor, scopes, and `apply_op`.

Every op wrapper ends in `apply_op`, which runs the op's shape and dtype rules at build time and turns
a rule failure into an InvalidArgumentError that names the op, its inputs and the user's own line.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

import numpy as np

from graphexec import display, errors, ir
from graphexec.default_session import clear_default_sessions, default_session_for
from graphexec.digest import NodeDigester
from graphexec.ops import registry
from graphexec.ops.registry import Aval, ShapeError

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


_inside_package: dict[str, bool] = {}


def user_source() -> str:
    """file:line of the innermost frame outside graphexec: the user's line that built the op."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        inside = _inside_package.get(filename)
        if inside is None:
            inside = _inside_package[filename] = os.path.abspath(filename).startswith(_PACKAGE_DIR)
        if not inside:
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


class TensorShape:
    """A static, possibly partial shape (TF's TensorShape, returning plain ints or None)."""

    __slots__ = ("dims",)

    def __init__(self, dims):
        self.dims = None if dims is None else tuple(None if d is None or d < 0 else int(d) for d in dims)

    @property
    def ndims(self):
        return None if self.dims is None else len(self.dims)

    rank = ndims

    def as_list(self):
        if self.dims is None:
            raise ValueError("as_list() is not defined on an unknown TensorShape.")
        return list(self.dims)

    def is_fully_defined(self) -> bool:
        return self.dims is not None and None not in self.dims

    def num_elements(self):
        return None if not self.is_fully_defined() else int(np.prod(self.dims, dtype=np.int64))

    def __iter__(self):
        if self.dims is None:
            raise ValueError("Cannot iterate over a shape with unknown rank.")
        return iter(self.dims)

    def __len__(self):
        if self.dims is None:
            raise ValueError("Cannot take the length of a shape with unknown rank.")
        return len(self.dims)

    def __getitem__(self, key):
        return self.dims[key] if not isinstance(key, slice) else TensorShape(self.dims[key])

    def __eq__(self, other):
        other_dims = other.dims if isinstance(other, TensorShape) else (None if other is None else tuple(other))
        return self.dims == other_dims

    def __hash__(self):
        return hash(self.dims)

    # TF1's printing: str "(?, 3)", repr "TensorShape([Dimension(None), Dimension(3)])".
    def __repr__(self):
        if self.dims is None:
            return "TensorShape(None)"
        return "TensorShape([" + ", ".join(f"Dimension({d})" for d in self.dims) + "])"

    def __str__(self):
        if self.dims is None:
            return "<unknown>"
        text = ", ".join("?" if d is None else str(d) for d in self.dims)
        return f"({text},)" if len(self.dims) == 1 else f"({text})"


class Tensor:
    """One output of an Operation. Hashable by identity, so it can key a feed_dict."""

    __slots__ = ("op", "value_index", "dtype", "_shape", "_value", "__weakref__")
    __array_priority__ = 100  # numpy defers `ndarray + Tensor` to Tensor.__radd__

    def __init__(self, op, value_index, dtype, shape, value=None):
        self.op = op
        self.value_index = value_index
        self.dtype = dtype
        self._shape = shape
        self._value = value

    @property
    def name(self) -> str:
        return f"{self.op.name}:{self.value_index}"

    @property
    def graph(self):
        return self.op.graph

    @property
    def device(self):
        return self.op.device

    @property
    def shape(self) -> TensorShape:
        return TensorShape(self._shape)

    def get_shape(self) -> TensorShape:
        return self.shape

    def set_shape(self, shape) -> None:
        new = TensorShape(shape).dims if not isinstance(shape, TensorShape) else shape.dims
        merged = merge_shapes(self._shape, new, f"set_shape on {self.name}")
        if merged != self._shape:
            self._shape = merged
            self.op.graph._node_changed(self.op)

    @property
    def aval(self) -> Aval:
        return Aval(self.dtype, self._shape, self._value)

    def eval(self, feed_dict=None, session=None):
        return default_session_for(self.graph, session).run(self, feed_dict)

    def consumers(self):
        return [op for op in self.graph.get_operations() if self in op.inputs]

    def __repr__(self):
        return f"<tf.Tensor '{self.name}' shape={self.shape} dtype={self.dtype.name}>"

    def __str__(self):
        shape = "" if self._shape is None else f"shape={self.shape}, "  # TF1 leaves an unknown rank out
        return f'Tensor("{self.name}", {shape}dtype={self.dtype.name})'

    def __bool__(self):
        raise TypeError("Using a tf.Tensor as a Python bool is not allowed in graph mode; use tf.cond or "
                        "evaluate it in a session first.")

    def __iter__(self):
        if self._shape is None or not self._shape or self._shape[0] is None:
            raise TypeError("Tensor objects are only iterable when the first dimension is known.")
        return iter(self[i] for i in range(self._shape[0]))

    def __len__(self):
        if self._shape is None or not self._shape or self._shape[0] is None:
            raise TypeError("len() of a tensor with unknown first dimension")
        return self._shape[0]

    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"cannot convert symbolic tensor {self.name} to a numpy array; run it in a Session")

    # Operators are attached by graphexec.ops.overloads, next to the ops they build.


def merge_shapes(old, new, what):
    if old is None or old == new:
        return new
    if new is None:
        return old
    if len(old) != len(new):
        raise ValueError(f"{what}: shapes {ir.format_shape(old)} and {ir.format_shape(new)} are incompatible")
    out = []
    for a, b in zip(old, new):
        if a is not None and b is not None and a != b:
            raise ValueError(f"{what}: shapes {ir.format_shape(old)} and {ir.format_shape(new)} are incompatible")
        out.append(a if a is not None else b)
    return tuple(out)


class Operation:
    """A node of the user's graph."""

    __slots__ = ("graph", "name", "type", "inputs", "control_inputs", "attrs", "device", "source", "outputs",
                 "_node", "__weakref__")

    def __init__(self, graph, name, op_type, inputs, control_inputs, attrs, device, source):
        self.graph = graph
        self.name = name
        self.type = op_type
        self.inputs = tuple(inputs)
        self.control_inputs = tuple(control_inputs)
        self.attrs = attrs
        self.device = device
        self.source = source
        self.outputs: tuple[Tensor, ...] = ()
        self._node = None

    def get_attr(self, name):
        return self.attrs[name]

    @property
    def node_def(self) -> ir.Node:
        if self._node is None:
            self._node = ir.Node(
                name=self.name, op=self.type, inputs=tuple(t.name for t in self.inputs),
                control_inputs=tuple(op.name for op in self.control_inputs), attrs=self.attrs,
                outputs=tuple(ir.TensorType(t.dtype, t._shape) for t in self.outputs),
                device=self.device, source=self.source)
        return self._node

    def run(self, feed_dict=None, session=None):
        default_session_for(self.graph, session).run(self, feed_dict)

    def __repr__(self):
        return f"<tf.Operation '{self.name}' type={self.type}>"

    def __str__(self):
        """The op's NodeDef in the text form TF1 prints (attrs as the IR spells their values)."""
        lines = [f'name: "{self.name}"', f'op: "{self.type}"']
        lines += [f'input: "{t.name[:-2] if t.value_index == 0 else t.name}"' for t in self.inputs]
        lines += [f'input: "^{op.name}"' for op in self.control_inputs]
        if self.device:
            lines.append(f'device: "{self.device}"')
        for key, value in self.attrs.items():
            if not key.startswith("_"):
                lines.append(f'attr {{\n  key: "{key}"\n  value: {ir.format_attr(value)}\n}}')
        return "\n".join(lines) + "\n"

    def _repr_svg_(self) -> str:
        """Jupyter draws the op with everything it depends on."""
        return display.render(display.node_boxes(display.subgraph(self.graph.nodes(), [self.name])),
                              title=repr(self)[1:-1])


class Graph:
    """A growable dataflow graph. Ops are appended in creation order, which is a topological order."""

    def __init__(self):
        self._ops: list[Operation] = []
        self._by_name: dict[str, Operation] = {}
        self._names_in_use: dict[str, int] = {}
        self._name_stack = ""
        self._device_stack: list = []  # device strings, or TF1 device functions (op -> device string)
        self._control_stack: list[list[Operation]] = []
        self._function_stack: list[FunctionScope] = []  # functions being traced (cond branches, loop bodies)
        self._collections: dict[str, list] = {}
        self.seed: int | None = None
        self._last_id = 0
        self._finalized = False
        self._digester = NodeDigester()
        self._digest_cache: tuple = (None, None, "")  # (chain state, seed, digest): sessions ask on every run
        self._nodes_cache: tuple[int, tuple] = (0, ())
        # Ops whose output shapes were refined after their rules gave them (set_shape): only theirs are sent
        # as declared shapes, since a server's rules give every other op the shapes graph building did.
        self._refined: set[str] = set()
        self._lock = threading.RLock()

    # -- naming, scopes -----------------------------------------------------------------------
    def unique_name(self, name: str, mark_as_used: bool = True) -> str:
        full = f"{self._name_stack}/{name}" if self._name_stack else name
        key = full.lower()
        count = self._names_in_use.get(key, 0)
        if mark_as_used:
            self._names_in_use[key] = count + 1
        if count:
            candidate = f"{full}_{count}"
            while candidate.lower() in self._names_in_use:
                count += 1
                candidate = f"{full}_{count}"
            if mark_as_used:
                self._names_in_use[candidate.lower()] = 1
            return candidate
        return full

    def get_name_scope(self) -> str:
        """The current name scope, without a trailing slash ("" at the root)."""
        return self._name_stack

    @contextlib.contextmanager
    def name_scope(self, name):
        old = self._name_stack
        if name is None or name == "":
            self._name_stack = ""
        elif name.endswith("/"):
            self._name_stack = name[:-1]
        else:
            self._name_stack = self.unique_name(name)
        try:
            yield (self._name_stack + "/") if self._name_stack else ""
        finally:
            self._name_stack = old

    @contextlib.contextmanager
    def device(self, device_name):
        self._device_stack.append(device_name or "")
        try:
            yield
        finally:
            self._device_stack.pop()

    @contextlib.contextmanager
    def control_dependencies(self, control_inputs):
        if control_inputs is None:  # as in TF1, this also leaves any cond branch or loop body being traced
            saved, self._control_stack = self._control_stack, []
            functions, self._function_stack = self._function_stack, []
            try:
                yield
            finally:
                self._control_stack, self._function_stack = saved, functions
            return
        ops = []
        for c in control_inputs:
            if hasattr(c, "_as_control_op"):
                c = c._as_control_op()
            ops.append(c.op if isinstance(c, Tensor) else c)
        self._control_stack.append(ops)
        try:
            yield
        finally:
            self._control_stack.pop()

    @contextlib.contextmanager
    def as_default(self):
        _graph_stack().append(self)
        try:
            yield self
        finally:
            _graph_stack().pop()

    # -- building -----------------------------------------------------------------------------
    def create_op(self, op_type, inputs, attrs, name, out_avals, source) -> Operation:
        with self._lock:
            if self._finalized:
                raise RuntimeError("Graph is finalized and cannot be modified.")
            control = [op for deps in self._control_stack for op in deps]
            op = Operation(self, name, op_type, inputs, dict.fromkeys(control), attrs, "", source)
            op.outputs = tuple(Tensor(op, i, a.dtype, a.shape, a.value) for i, a in enumerate(out_avals))
            op.device = self._device_for(op)
            self._ops.append(op)
            self._by_name[name] = op
            if self._function_stack:
                self._function_stack[-1].adopt(op)
            # IR node and digest are kept current as the graph grows (as TF builds its NodeDefs), so a
            # run never re-walks the whole graph to name it.
            self._digester.add(op.node_def)
            self._last_id += 1
            return op

    def _device_for(self, op) -> str:
        """The innermost tf.device that names one; a device function is called with the op, as in TF1."""
        for entry in reversed(self._device_stack):
            device_name = entry(op) if callable(entry) else entry
            if device_name:
                return device_name if isinstance(device_name, str) else device_name.to_string()
        return ""

    def finalize(self):
        self._finalized = True

    @property
    def finalized(self):
        return self._finalized

    # -- lookup -------------------------------------------------------------------------------
    def get_operations(self):
        return list(self._ops)

    def get_operation_by_name(self, name) -> Operation:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"The name '{name}' refers to an Operation not in the graph.") from None

    def get_tensor_by_name(self, name) -> Tensor:
        op_name, index = ir.split_tensor_name(name)
        op = self.get_operation_by_name(op_name)
        if index >= len(op.outputs):
            raise KeyError(f"The name '{name}' refers to a Tensor which does not exist.")
        return op.outputs[index]

    def as_graph_element(self, obj):
        if isinstance(obj, (Tensor, Operation)):
            return obj
        if isinstance(obj, str):
            return self.get_tensor_by_name(obj) if ":" in obj else self.get_operation_by_name(obj)
        if hasattr(obj, "_as_graph_element"):
            return obj._as_graph_element()
        raise TypeError(f"Can not convert a {type(obj).__name__} into a Tensor or Operation.")

    # -- collections --------------------------------------------------------------------------
    def add_to_collection(self, name, value):
        self._collections.setdefault(name, []).append(value)

    def add_to_collections(self, names, value):
        for name in ([names] if isinstance(names, str) else names):
            self.add_to_collection(name, value)

    def get_collection(self, name, scope=None):
        items = self._collections.get(name, [])
        if scope is None:
            return list(items)
        pattern = re.compile(scope)  # as TF: a regex matched at the start of each item's name; unnamed items drop
        return [i for i in items if isinstance(getattr(i, "name", None), str) and pattern.match(i.name)]

    def get_collection_ref(self, name):
        return self._collections.setdefault(name, [])

    # -- IR views -----------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """Number of ops; grows as the graph is extended."""
        return len(self._ops)

    def nodes(self) -> tuple[ir.Node, ...]:
        """IR nodes of every op so far (cached; extended incrementally as the graph grows)."""
        count, cached = self._nodes_cache
        if count != len(self._ops):
            cached = cached + tuple(op.node_def for op in self._ops[count:])
            self._nodes_cache = (len(cached), cached)
        return cached

    def digest(self) -> str:
        """Content digest of the graph so far (kept current as ops are created; see graphexec.digest)."""
        state, seed, digest = self._digest_cache
        if state is not self._digester.chain_state() or seed != self.seed:
            state, seed = self._digester.chain_state(), self.seed
            digest = self._digester.digest(seed)
            self._digest_cache = (state, seed, digest)
        return digest

    def snapshot(self):
        """(nodes, seed, digest, chain state, names of refined ops) of one consistent moment, for uploading
        the graph."""
        with self._lock:
            return self.nodes(), self.seed, self.digest(), self._digester.chain_state(), frozenset(self._refined)

    def _node_changed(self, op) -> None:
        """An op's static output types changed (set_shape): rebuild its IR node on next use."""
        with self._lock:
            op._node = None
            self._nodes_cache = (0, ())
            self._refined.add(op.name)

    def __repr__(self):
        return f"<tf.Graph with {len(self._ops)} ops>"

    def _repr_svg_(self) -> str:
        """Jupyter draws the graph: every op with its type, output dtypes and shapes, and device."""
        return display.render(display.node_boxes(self.nodes()), title=repr(self)[1:-1])


# -- default graph ---------------------------------------------------------------------------------
_global_default_graph = Graph()
_local = threading.local()


def _graph_stack() -> list:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def get_default_graph() -> Graph:
    stack = _graph_stack()
    return stack[-1] if stack else _global_default_graph


def reset_default_graph() -> None:
    global _global_default_graph
    if _graph_stack():
        raise AssertionError("Do not use tf.reset_default_graph() inside a `with graph.as_default()` block.")
    _global_default_graph = Graph()
    clear_default_sessions()


# -- op construction -------------------------------------------------------------------------------
def _describe_inputs(inputs) -> str:
    return ", ".join(f"'{t.name}' {t.dtype.name}{ir.format_shape(t._shape)}" for t in inputs)


def apply_op(op_type: str, inputs=(), attrs=None, name=None, graph=None) -> Operation:
    """Create an op in the default graph (or `graph`), inferring output shapes and dtypes now."""
    definition = registry.get(op_type)
    attrs = attrs or {}
    graph = graph or (inputs[0].graph if inputs else get_default_graph())
    for t in inputs:
        if t.graph is not graph:
            raise ValueError(f"Tensor {t.name} must be from the same graph as the other inputs of {op_type}.")
    # A name ending in "/" is taken exactly (TF's convention for re-entering a scope).
    op_name = name[:-1] if name and name.endswith("/") else graph.unique_name(name or op_type)
    if graph._function_stack:  # outer tensors used inside a traced function become its arguments
        scope = graph._function_stack[-1]
        inputs = [t if id(t.op) in scope.op_ids else scope.capture(t) for t in inputs]
    avals = [t.aval for t in inputs]
    try:
        attrs, out = registry.infer(definition, avals, attrs)  # the op keeps its attrs with defaults filled in
    except ShapeError as exc:
        source = user_source()
        raise errors.InvalidArgumentError(
            None, None,
            f"{op_type} '{op_name}' (created at {source}): {exc}. Inputs: {_describe_inputs(inputs) or 'none'}."
        ) from None
    return graph.create_op(op_type, inputs, attrs, op_name, out, user_source())


class FunctionScope:
    """The ops of one function being traced into the user's graph: a cond branch, a loop's cond or body.

    Its nodes live in the graph like any other; the calling If/While names its argument nodes (FuncArg)
    and result tensors, and the compiler runs the ancestors of those results as a sub-plan. An outer
    tensor used inside is captured: it becomes a FuncArg here and an input of the caller (`outer`).
    A constant is copied in instead, so shape rules inside still see its value.
    """

    def __init__(self, graph: Graph, name: str):
        self.graph, self.name = graph, name
        self.parent = graph._function_stack[-1] if graph._function_stack else None
        self.op_ids: set[int] = set()
        self.args: list[Tensor] = []  # FuncArg outputs, in argument order
        self.outer: list[Tensor | None] = []  # per argument: the captured outer tensor, None when declared
        self._captured: dict[int, Tensor] = {}

    def adopt(self, op: Operation) -> None:
        foreign = [c.name for c in op.control_inputs if id(c) not in self.op_ids]
        if foreign:
            raise ValueError(f"op '{op.name}' inside '{self.name}' has a control dependency on {foreign}, which are "
                             f"outside it; create the dependency outside the branch or loop body")
        self.op_ids.add(id(op))

    @contextlib.contextmanager
    def entered(self):
        """Make this function the one being traced (control dependencies from outside do not reach in)."""
        graph = self.graph
        saved = graph._function_stack, graph._control_stack, graph._name_stack
        chain, scope = [], self
        while scope is not None:
            chain.insert(0, scope)
            scope = scope.parent
        graph._function_stack, graph._control_stack = chain, []
        try:
            yield self
        finally:
            graph._function_stack, graph._control_stack, graph._name_stack = saved

    def add_arg(self, dtype, shape, outer: Tensor | None = None) -> Tensor:
        with self.entered():
            self.graph._name_stack = self.name
            arg = apply_op("FuncArg", (), {"dtype": dtype, "shape": ir.ShapeAttr(shape)}, "arg",
                           graph=self.graph).outputs[0]
        self.args.append(arg)
        self.outer.append(outer)
        return arg

    def capture(self, t: Tensor) -> Tensor:
        if id(t.op) in self.op_ids:
            return t
        arg = self._captured.get(id(t))
        if arg is None:
            outer = self.parent.capture(t) if self.parent is not None else t
            if t.op.type == "Const":
                with self.entered():
                    self.graph._name_stack = self.name
                    arg = apply_op("Const", (), t.op.attrs, "captured_const", graph=self.graph).outputs[0]
            else:
                arg = self.add_arg(t.dtype, t._shape, outer)
            self._captured[id(t)] = arg
        return arg


def name_scope(name, default_name=None, values=None):
    """tf.name_scope(name) / tf.name_scope(name, default_name, values) on the default graph."""
    graph = get_default_graph()
    if values:
        graph = next((v.graph for v in values if isinstance(v, Tensor)), graph)
    return graph.name_scope(name if name is not None else default_name)


def device(device_name):
    return get_default_graph().device(device_name)


def current_function(graph: Graph | None = None) -> FunctionScope | None:
    """The function (cond branch or loop body) being traced; None at the graph's top level."""
    graph = graph or get_default_graph()
    return graph._function_stack[-1] if graph._function_stack else None


def control_dependencies(control_inputs):
    return get_default_graph().control_dependencies(control_inputs)
