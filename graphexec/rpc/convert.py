"""Domain objects <-> protobuf (graphexec.v1): attributes, nodes and graphs, plans, run results.

Received nodes are typed by graphexec.rpc.graph_types (their ops' rules), never by the sender's word.
"""
from __future__ import annotations

import functools

import numpy as np

import graphexec.ops.every_op  # noqa: F401  (a decoding process knows every op, not just those it imported)
from graphexec import dtypes, errors, ir
from graphexec.compiler.plan import Endpoint, Plan, Step, compiler_version
from graphexec.config import RunMetadata
from graphexec.ir import ShapeAttr
from graphexec.ops import registry
from graphexec.proto.v1 import graph_pb2 as pb
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.proto.v1 import worker_pb2 as wpb
from graphexec.rpc.codec import (decode_tensor_message, encode_tensor_message, field_number, leading_varint,
                                 tensor_message_pieces)
from graphexec.rpc.graph_types import GraphTypes
from graphexec.rpc.tensors import (DecodeError, dtype_enum, dtype_from_enum, shape_from_proto, shape_to_proto,
                                   tensor_from_proto, tensor_to_proto)
from graphexec.runtime.executor import NodeStats

GRAPH_FORMAT_VERSION = 1


# -- attributes -------------------------------------------------------------------------------------
def _set_type(value, out):
    out.type = dtype_enum(value)


def _set_shape(value, out):
    shape_to_proto(value.dims, out.shape)


def _set_tensor(value, out):
    tensor_to_proto(value, out.tensor)


# Exact-type dispatch for the common attr values (every node of an upload has some); subclasses and numpy
# scalars take the isinstance chain below.
_SETTERS = {bool: lambda v, out: setattr(out, "b", v), str: lambda v, out: setattr(out, "s", v),
            int: lambda v, out: setattr(out, "i", v), float: lambda v, out: setattr(out, "f", v),
            dtypes.DType: _set_type, ShapeAttr: _set_shape, np.ndarray: _set_tensor}


def attr_to_proto(value, out: pb.AttrValue) -> pb.AttrValue:
    setter = _SETTERS.get(type(value))
    if setter is not None:
        setter(value, out)
        return out
    if value is None:
        out.none = True
    elif isinstance(value, bool):
        out.b = value
    elif isinstance(value, str):
        out.s = value
    elif isinstance(value, (int, np.integer)):
        out.i = int(value)
    elif isinstance(value, (float, np.floating)):
        out.f = float(value)
    elif isinstance(value, dtypes.DType):
        out.type = dtype_enum(value)
    elif isinstance(value, ShapeAttr):
        shape_to_proto(value.dims, out.shape)
    elif isinstance(value, np.ndarray):
        tensor_to_proto(value, out.tensor)
    elif isinstance(value, (tuple, list)):
        _list_to_proto(value, out)
    else:
        raise TypeError(f"attribute value of type {type(value).__name__} cannot be serialized: {value!r}")
    return out


def _list_to_proto(values, out: pb.AttrValue) -> None:
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        out.ints.SetInParent()
        out.ints.values.extend(int(v) for v in values)
    elif all(isinstance(v, (float, np.floating)) for v in values):
        out.floats.values.extend(float(v) for v in values)
    elif all(isinstance(v, str) for v in values):
        out.strings.values.extend(values)
    else:
        out.list.SetInParent()
        for v in values:
            attr_to_proto(v, out.list.values.add())


def attr_from_proto(msg: pb.AttrValue):
    kind = msg.WhichOneof("value")
    if kind is None:
        raise DecodeError("attribute has no value")
    if kind == "none":
        return None
    if kind in ("b", "s", "i", "f"):
        return getattr(msg, kind)
    if kind == "type":
        return dtype_from_enum(msg.type)
    if kind == "shape":
        return ShapeAttr(shape_from_proto(msg.shape))
    if kind == "tensor":
        return tensor_from_proto(msg.tensor)
    if kind in ("ints", "floats", "strings"):
        return tuple(getattr(msg, kind).values)
    return tuple(attr_from_proto(v) for v in msg.list.values)


def attrs_to_proto(attrs: dict, out) -> None:
    for key, value in attrs.items():
        attr_to_proto(value, out[key])


def attrs_from_proto(attrs) -> ir.Attrs:
    if not attrs:  # many ops carry none (W5's 1,000 adds and multiplies)
        return ir.EMPTY_ATTRS
    return ir.Attrs.in_key_order({key: attr_from_proto(attrs[key]) for key in sorted(attrs)})


# -- nodes and graphs -------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)  # the ops of one line of a program share its source
def _source_parts(source: str) -> tuple[str, int]:
    file, sep, line = source.rpartition(":")
    return (file, int(line)) if sep and line.isdigit() else (source, 0)


def _source_to_proto(source: str, out: pb.SourceLocation) -> None:
    file, line = _source_parts(source)
    out.file = file
    if line:
        out.line = line


def _source_from_proto(msg: pb.SourceLocation) -> str:
    return f"{msg.file}:{msg.line}" if msg.line else msg.file


def node_to_proto(node: ir.Node, out: pb.NodeDef, with_shapes: bool = True) -> pb.NodeDef:
    # Hot for large uploads: empty fields are left unset rather than set empty.
    out.name, out.op = node.name, node.op
    if node.device:
        out.device = node.device
    out.inputs.extend(node.inputs)
    if node.control_inputs:
        out.control_inputs.extend(node.control_inputs)
    if node.attrs:
        attrs_to_proto(node.attrs, out.attrs)
    if node.source:
        _source_to_proto(node.source, out.source)
    if with_shapes:
        for output in node.outputs:
            shape_to_proto(output.shape, out.output_shapes.add())
    return out


def graph_to_proto(nodes, seed=None, declared=None, out: pb.GraphDef | None = None) -> pb.GraphDef:
    """The GraphDef of `nodes` (into `out` when given). `declared`: the names of the nodes whose output
    shapes are sent (None: every node's). A receiver infers every node's shapes by its op's rules, so
    only shapes refined beyond those (set_shape) need to travel: a 2,000-node upload spends ~15% less
    time decoding without the others."""
    graph = out if out is not None else pb.GraphDef()
    graph.format_version = GRAPH_FORMAT_VERSION
    add = graph.nodes.add
    for node in nodes:
        node_to_proto(node, add(), declared is None or node.name in declared)
    if seed is not None:
        graph.seed = seed
    return graph


def nodes_from_proto(graph: pb.GraphDef, known: GraphTypes, check_untyped=None) -> list[ir.Node]:
    """IR nodes of `graph`, typed by their ops' rules against `known` (which grows as they decode).
    `check_untyped(nodes)` sees the nodes before their types are inferred, which costs more than
    reading them: a graph whose digest is wrong is rejected there, before the inference."""
    if graph.format_version != GRAPH_FORMAT_VERSION:
        raise DecodeError(f"graph format version {graph.format_version} is not supported "
                          f"(this server reads version {GRAPH_FORMAT_VERSION})")
    untyped = [_untyped_node(node) for node in graph.nodes]
    if check_untyped is not None:
        check_untyped([node for node, _ in untyped])
    inferred: dict = {}  # outputs of like nodes, for this upload only (graph_types.inference_key)
    return [_typed(node, declared, known, inferred) for node, declared in untyped]


def node_from_proto(msg: pb.NodeDef, known: GraphTypes) -> ir.Node:
    return _typed(*_untyped_node(msg), known)


def _untyped_node(msg: pb.NodeDef) -> tuple[ir.Node, list]:
    """(the node without output types, its declared output shapes). Hot for large uploads: protobuf
    fields are read once each."""
    node = ir.Node(msg.name, msg.op, tuple(msg.inputs), tuple(msg.control_inputs), attrs_from_proto(msg.attrs),
                   (), msg.device, _source_from_proto(msg.source))
    shapes = msg.output_shapes  # sent only for refined ops (graph_to_proto's `declared`)
    return node, [shape_from_proto(s) for s in shapes] if shapes else []


def _typed(node: ir.Node, declared: list, known: GraphTypes, inferred: dict | None = None) -> ir.Node:
    outputs = known.add_node(node.name, node.op, node.inputs, node.control_inputs, node.attrs, node.source, declared,
                             inferred)
    # The node was made here and nothing holds it yet: its types are set in place, as its own __init__
    # sets fields, rather than by building it a second time (hot: a 2,000-node upload decodes every node).
    object.__setattr__(node, "outputs", outputs)
    return node


# -- plans ------------------------------------------------------------------------------------------
def plan_to_proto(plan: Plan) -> pb.Plan:
    msg = pb.Plan(graph_digest=plan.graph_digest, num_slots=plan.num_slots)
    for endpoints, out in ((plan.feeds, msg.feeds), (plan.fetches, msg.fetches)):
        for e in endpoints:
            item = out.add(tensor=e.tensor, slot=e.slot, dtype=dtype_enum(e.type.dtype))
            shape_to_proto(e.type.shape, item.shape)
    for step in plan.steps:
        _step_to_proto(step, msg.steps.add())
    for slot, value in plan.constants.items():
        tensor_to_proto(value, msg.constants[slot])
    msg.targets.extend(plan.targets)
    if plan.seed is not None:
        msg.seed = plan.seed
    return msg


def _step_to_proto(step: Step, out: pb.PlanStep) -> None:
    out.node, out.op, out.device = step.node, step.op, step.device
    out.inputs.extend(step.inputs)
    out.outputs.extend(step.outputs)
    out.free.extend(step.free)
    out.covers.extend(step.covers)
    _source_to_proto(step.source, out.source)
    for t in step.output_types:
        out.output_dtypes.append(dtype_enum(t.dtype))
        shape_to_proto(t.shape, out.output_shapes.add())
    if registry.get(step.op).is_fused:  # the body travels in the compact operand encoding of FusedOp
        body = step.attrs["body"]
        for node, operands in zip(body.nodes, body.operands()):
            out_type = node.outputs[0]
            fused = out.fused.add(op=node.op, operands=operands, dtype=dtype_enum(out_type.dtype))
            attrs_to_proto(node.attrs, fused.attrs)
            shape_to_proto(out_type.shape, fused.shape)
    else:
        for key, value in step.attrs.items():
            if isinstance(value, Plan):  # an If or While function
                out.functions[key].CopyFrom(plan_to_proto(value))
            else:
                attr_to_proto(value, out.attrs[key])


def plan_from_proto(msg: pb.Plan) -> Plan:
    def endpoint(e):
        return Endpoint(e.tensor, e.slot, ir.TensorType(dtype_from_enum(e.dtype), shape_from_proto(e.shape)))

    return Plan(
        graph_digest=msg.graph_digest, feeds=tuple(endpoint(e) for e in msg.feeds),
        fetches=tuple(endpoint(e) for e in msg.fetches), steps=tuple(_step_from_proto(s) for s in msg.steps),
        num_slots=msg.num_slots,
        constants={slot: _read_only(tensor_from_proto(msg.constants[slot])) for slot in sorted(msg.constants)},
        targets=tuple(msg.targets), seed=msg.seed if msg.HasField("seed") else None)


def plan_to_bytes(plan: Plan) -> bytes:
    """The plan as the store keeps it, stamped with what compiled it (compiler_version())."""
    msg = plan_to_proto(plan)
    msg.compiler_version = compiler_version()
    return msg.SerializeToString()


class OtherCompiler(errors.FailedPreconditionError):
    """A stored plan compiled by another version of graphexec (compiler_version() says why it is not run)."""

    def __init__(self, theirs: str):
        super().__init__(None, None, f"the plan was compiled by {theirs or 'an unknown version'}, this process is "
                                     f"{compiler_version()}: make the callable again")


def plan_from_bytes(data: bytes) -> Plan:
    """A plan stored by plan_to_bytes; OtherCompiler when another version of graphexec compiled it."""
    msg = pb.Plan.FromString(data)
    if msg.compiler_version != compiler_version():
        raise OtherCompiler(msg.compiler_version)
    return plan_from_proto(msg)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _step_from_proto(msg: pb.PlanStep) -> Step:
    covers = tuple(msg.covers)
    if msg.fused:
        body = ir.Subprogram.from_operands(len(msg.inputs), (
            (f.op, f.operands, attrs_from_proto(f.attrs),
             ir.TensorType(dtype_from_enum(f.dtype), shape_from_proto(f.shape))) for f in msg.fused))
        attrs = ir.Attrs({"body": body, "covers": covers})
    else:
        attrs = attrs_from_proto(msg.attrs)
        if msg.functions:
            attrs = ir.Attrs({**attrs, **{key: plan_from_proto(msg.functions[key]) for key in msg.functions}})
    output_types = tuple(ir.TensorType(dtype_from_enum(d), shape_from_proto(s))
                         for d, s in zip(msg.output_dtypes, msg.output_shapes))
    return Step(node=msg.node, op=msg.op, attrs=attrs, inputs=tuple(msg.inputs), outputs=tuple(msg.outputs),
                free=tuple(msg.free), device=msg.device, source=_source_from_proto(msg.source), covers=covers,
                output_types=output_types)


# -- graph segments and run results ------------------------------------------------------------------
def segment_from_bytes(data: bytes) -> spb.GraphSegment:
    return spb.GraphSegment.FromString(data)


# A stored segment's fields before its nodes (two 32-byte chains, two counts) fit in this many bytes.
SEGMENT_HEAD_BYTES = 128


def segment_node_count(head: bytes) -> int | None:
    """The node count of a stored segment from its first SEGMENT_HEAD_BYTES bytes; None when they do not
    hold it (then parse the whole segment)."""
    return leading_varint(head, field_number(spb.GraphSegment, "node_count"))


def segment_to_bytes(segment: spb.GraphSegment) -> bytes:
    """A segment as stored by content: without the seed, which belongs to a session."""
    stored = spb.GraphSegment()
    stored.CopyFrom(segment)
    stored.ClearField("seed")
    return stored.SerializeToString()


def fetches_to_bytes(fetches) -> bytes:
    """Fetched values as a RunPlanResponse (kept with an applied request id, for replays)."""
    return encode_tensor_message(b"", "fetches", fetches, message_class=wpb.RunPlanResponse)


def fetches_from_bytes(data: bytes) -> list:
    return decode_tensor_message(wpb.RunPlanResponse, data, "fetches")[1]


# -- the Worker service's RunPlan, as a server calls it --------------------------------------------
def run_plan_request(feeds, **fields) -> list:
    """A RunPlanRequest with `fields` (container, plan_key, request_id, ...) and `feeds`, as buffers to
    write in order (feed contents are views of the feeds: b"".join them for one message)."""
    return tensor_message_pieces(wpb.RunPlanRequest(**fields), "feeds", feeds)


def run_plan_reply(data: bytes) -> tuple[list, list[NodeStats], bool, str, list[str]]:
    """(fetches, node stats, deduplicated, worker, printed text) of a RunPlanResponse; fetches view `data`."""
    response, fetches, _ = decode_tensor_message(wpb.RunPlanResponse, data, "fetches")
    return (fetches, stats_from_proto(response.node_stats), response.deduplicated, response.worker,
            list(response.printed))


# -- run metadata -----------------------------------------------------------------------------------
def stats_to_proto(stats, out) -> None:
    for s in stats:
        out.add(node=s.node_name, op=s.op, start_micros=s.start_micros, duration_micros=s.duration_micros,
                covers=s.covers, device=s.device, worker=s.worker)


def stats_from_proto(messages) -> list[NodeStats]:
    return [NodeStats(s.node, s.op, s.start_micros, s.duration_micros, tuple(s.covers), s.device, s.worker)
            for s in messages]


def plan_source_name(value: int) -> str:
    """"compiled", "memory" or "store" for a PlanSource enum value."""
    return spb.PlanSource.Name(value).removeprefix("PLAN_SOURCE_").lower()


def metadata_from_proto(msg: spb.RunMetadata, out: RunMetadata) -> RunMetadata:
    """Fill a tf.RunMetadata from the server's answer."""
    out.step_stats.node_stats = stats_from_proto(msg.node_stats)
    out.plan_cache_hit = msg.plan_cache_hit
    out.plan_source = plan_source_name(msg.plan_source)
    out.compile_ms = msg.compile_ms
    out.executed_nodes = list(msg.executed_nodes)
    out.devices = dict(msg.devices)
    out.workers = dict(msg.workers)
    out.soft_placement = [f"{p.node}: requested {p.requested_device}, placed on {p.assigned_device} ({p.reason})"
                          for p in msg.soft_placement]
    out.plan_text = msg.plan_text
    out.deduplicated = msg.deduplicated
    out.worker = msg.worker
    return out
