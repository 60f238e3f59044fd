"""The one module that converts between graphexec's Python values and protobuf (graphexec.v1).

* numpy <-> Tensor: raw little-endian bytes; decoding is `np.frombuffer` over the received bytes.
* IR nodes <-> NodeDef/GraphDef. Decoding never trusts the sender's types: each node's outputs are
  re-inferred from its op's rules, and an unknown op, a dangling input or a bad attribute is an
  InvalidArgumentError naming the node and the user's source line.
* Plan <-> Plan proto, for the shared plan cache.
* Tensor-carrying messages (`encode_tensor_message` / `decode_tensor_message`): the message's
  tensor field is written by hand after the rest of the message, so large contents are copied once
  into the outgoing buffer and read back as zero-copy views of the incoming one. The result is
  ordinary protobuf wire format (grpcurl and other languages read it as usual).
* tf.errors classes <-> gRPC status codes.

Nothing else in graphexec imports *_pb2, except the gRPC servicer and client glue.
"""
from __future__ import annotations

import functools
import importlib
import math
import pkgutil

import grpc
import numpy as np

import graphexec.ops
from graphexec import dtypes, errors, ir
from graphexec.compiler.plan import Endpoint, Plan, Step
from graphexec.config import RunMetadata
from graphexec.ir import ShapeAttr
from graphexec.framework import merge_shapes
from graphexec.ops import registry
from graphexec.proto.v1 import graph_pb2 as pb
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.proto.v1 import worker_pb2 as wpb
from graphexec.runtime.executor import NodeStats

GRAPH_FORMAT_VERSION = 1
# Below this size, a message is parsed by protobuf itself (faster than walking it in Python).
WALK_THRESHOLD = 32 << 10
# Tensors above this size travel in parts on the Run stream: protobuf messages stop at 2 GiB, and
# parts pipeline the copies on both sides (a 64 MiB round trip took half the time in 4 MiB parts
# than as one message on a 2-core machine, and 1 MiB parts were another ~13% faster than 4 MiB).
CHUNK_BYTES = 1 << 20


class DecodeError(errors.InvalidArgumentError):
    """A malformed message: always INVALID_ARGUMENT, never a crash."""

    def __init__(self, message):
        super().__init__(None, None, message)


# -- dtypes and shapes ------------------------------------------------------------------------------
_ENUM_BY_DTYPE = {d: pb.DataType.Value("DATA_TYPE_" + d.name.upper()) for d in dtypes.ALL}
_DTYPE_BY_ENUM = {v: k for k, v in _ENUM_BY_DTYPE.items()}
_NP_BY_ENUM = {v: k.np.newbyteorder("<") for k, v in _ENUM_BY_DTYPE.items()}


def dtype_enum(dtype: dtypes.DType) -> int:
    return _ENUM_BY_DTYPE[dtype]


def numpy_dtype_enum(np_dtype) -> int:
    return _ENUM_BY_DTYPE[dtypes.from_numpy(np_dtype)]


def dtype_from_enum(value: int) -> dtypes.DType:
    try:
        return _DTYPE_BY_ENUM[value]
    except KeyError:
        raise DecodeError(f"unknown or unset dtype {value}") from None


def _np_dtype(value: int) -> np.dtype:
    try:
        return _NP_BY_ENUM[value]
    except KeyError:
        raise DecodeError(f"unknown or unset tensor dtype {value}") from None


def shape_to_proto(shape, out: pb.TensorShape) -> pb.TensorShape:
    if shape is None:
        out.unknown_rank = True
    else:
        out.dims.extend(-1 if d is None else d for d in shape)
    return out


def shape_from_proto(msg: pb.TensorShape):
    if msg.unknown_rank:
        if len(msg.dims):
            raise DecodeError("a shape of unknown rank cannot list dimensions")
        return None
    if any(d < -1 for d in msg.dims):
        raise DecodeError(f"invalid dimension in shape {list(msg.dims)}")
    return tuple(None if d == -1 else int(d) for d in msg.dims)


# -- tensors ----------------------------------------------------------------------------------------
def little_endian(array) -> np.ndarray:
    """A C-contiguous little-endian array with the same values (no copy when it already is one)."""
    array = np.asarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)  # (ascontiguousarray makes 0-d 1-d)


def tensor_to_proto(array, out: pb.Tensor | None = None) -> pb.Tensor:
    array = little_endian(array)
    out = out if out is not None else pb.Tensor()
    out.dtype = _ENUM_BY_DTYPE[dtypes.from_numpy(array.dtype)]
    out.shape.extend(array.shape)
    out.content = array.tobytes()
    return out


def _checked_array(buffer, dtype_value: int, shape, offset: int, length: int) -> np.ndarray:
    dtype = _np_dtype(dtype_value)
    if shape and min(shape) < 0:
        raise DecodeError(f"tensor shape {list(shape)} has a negative dimension")
    count = math.prod(shape)
    if count * dtype.itemsize != length:
        raise DecodeError(f"tensor of dtype {dtype.name} and shape {list(shape)} needs "
                          f"{count * dtype.itemsize} bytes of content, got {length}")
    return np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).reshape(shape)


def tensor_from_proto(msg: pb.Tensor) -> np.ndarray:
    """A read-only array viewing the message's content bytes."""
    content = msg.content
    return _checked_array(content, msg.dtype, tuple(msg.shape), 0, len(content))


def tensor_to_bytes(array) -> bytes:
    """A serialized Tensor message (e.g. a variable's value in Redis)."""
    return tensor_to_proto(array).SerializeToString()


def tensor_from_bytes(data: bytes) -> np.ndarray:
    return tensor_from_proto(pb.Tensor.FromString(data))


# -- hand-written tensor fields ---------------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@functools.lru_cache(maxsize=4096)
def _tensor_head(field: int, dtype: np.dtype, shape: tuple, nbytes: int) -> bytes:
    """Everything of a `Tensor` element but its content bytes (cached: runs repeat their shapes)."""
    body = bytearray(b"\x08")  # field 1 (dtype), varint
    body += _varint(_ENUM_BY_DTYPE[dtypes.from_numpy(dtype)])
    if shape:
        dims = b"".join(_varint(d) for d in shape)
        body += b"\x12" + _varint(len(dims)) + dims  # field 2 (shape), packed
    body += b"\x1a" + _varint(nbytes)  # field 3 (content)
    return _varint((field << 3) | 2) + _varint(len(body) + nbytes) + bytes(body)


def _tensor_pieces(field: int, array) -> list:
    """Wire pieces of one `Tensor` element of repeated field `field`; the content is a view."""
    array = little_endian(array)
    head = _tensor_head(field, array.dtype, array.shape, array.nbytes)
    if not array.nbytes:
        return [head]
    return [head, memoryview(array.reshape(-1).view(np.uint8))]


def _shell_pieces(field: int, dtype_value: int, shape) -> list:
    """A Tensor element with dtype and shape but no content (its content travels in parts)."""
    body = bytearray(b"\x08") + _varint(dtype_value)
    if shape:
        dims = b"".join(_varint(d) for d in shape)
        body += b"\x12" + _varint(len(dims)) + dims
    return [_varint((field << 3) | 2) + _varint(len(body)) + bytes(body)]


def encode_tensor_message(message, field: int, arrays=(), shells=None, raw_field: int = 0, raw=None) -> bytes:
    """`message` (without its tensor field; a message or its serialized bytes) followed by `arrays` as
    elements of repeated Tensor field `field`, and optionally `raw` as bytes field `raw_field`; one copy
    of each content.

    `shells` maps positions to (dtype enum, shape): those elements carry no content (sent in parts).
    """
    pieces = [message if isinstance(message, bytes) else message.SerializeToString()]
    for position, array in enumerate(arrays):
        if shells and position in shells:
            pieces += _shell_pieces(field, *shells[position])
        else:
            pieces += _tensor_pieces(field, array)
    if raw is not None:
        pieces += [_varint((raw_field << 3) | 2) + _varint(len(raw)), raw]
    return b"".join(pieces)



def parted_frames(message, field: int, tensors, part_message, parted: list):
    """The frames of a stream message whose tensors above CHUNK_BYTES travel ahead as parts.

    Yields each big tensor's parts (`part_message(TensorPart)` wraps one in the stream's message type),
    then `message` itself with content-less shells in their place; `parted` (the message's list of
    parted indices) is filled in as it goes. A message with no big tensor is one frame.
    """
    shells = {}
    for index, value in enumerate(tensors):
        if getattr(value, "nbytes", 0) <= CHUNK_BYTES:
            continue
        value = little_endian(value)
        dtype_value = numpy_dtype_enum(value.dtype)
        flat = value.reshape(-1).view(np.uint8)
        for offset in range(0, flat.size, CHUNK_BYTES):
            part = part_message(spb.TensorPart(index=index, offset=offset, dtype=dtype_value, shape=value.shape))
            yield encode_tensor_message(part, field, raw_field=15, raw=memoryview(flat[offset:offset + CHUNK_BYTES]))
        shells[index] = (dtype_value, value.shape)
        parted.append(index)
    yield encode_tensor_message(message, field, tensors, shells=shells)

def varint_field(number: int, value: int) -> bytes:
    """A varint field, to append to a serialized message (protobuf merges it in)."""
    return _varint(number << 3) + _varint(value)


def message_field(number: int, data: bytes) -> bytes:
    """A length-delimited field (an element of a repeated message field) holding serialized `data`."""
    return _varint((number << 3) | 2) + _varint(len(data)) + data


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise DecodeError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _skip(data: bytes, pos: int, end: int, wire_type: int) -> int:
    if wire_type == 0:
        return _read_varint(data, pos, end)[1]
    if wire_type == 1:
        pos += 8
    elif wire_type == 2:
        length, pos = _read_varint(data, pos, end)
        pos += length
    elif wire_type == 5:
        pos += 4
    else:
        raise DecodeError(f"unsupported wire type {wire_type}")
    if pos > end:
        raise DecodeError("field runs past the end of the message")
    return pos


def _walk_tensor(data: bytes, pos: int, end: int):
    """(dtype enum, shape, content offset, content length) of a Tensor encoded in data[pos:end]."""
    dtype_value, shape, offset, length = 0, [], pos, 0
    while pos < end:
        key, pos = _read_varint(data, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 1 and wire_type == 0:
            dtype_value, pos = _read_varint(data, pos, end)
        elif number == 2 and wire_type == 2:
            size, pos = _read_varint(data, pos, end)
            stop = pos + size
            if stop > end:
                raise DecodeError("tensor shape runs past the end of the message")
            while pos < stop:
                dim, pos = _read_varint(data, pos, stop)
                shape.append(dim - (1 << 64) if dim >= 1 << 63 else dim)
        elif number == 2 and wire_type == 0:
            dim, pos = _read_varint(data, pos, end)
            shape.append(dim - (1 << 64) if dim >= 1 << 63 else dim)
        elif number == 3 and wire_type == 2:
            length, pos = _read_varint(data, pos, end)
            offset = pos
            pos += length
            if pos > end:
                raise DecodeError("tensor content runs past the end of the message")
        else:
            pos = _skip(data, pos, end, wire_type)
    return dtype_value, tuple(shape), offset, length


def decode_tensor_message(cls, data: bytes, field: int, raw_field: int = 0):
    """(message without the tensor field, [arrays or (dtype, shape) for content-less elements], raw).

    Arrays are read-only views of `data`. Small messages are parsed by protobuf; large ones are
    walked so that contents are never copied.
    """
    try:
        if len(data) < WALK_THRESHOLD:
            message = cls.FromString(data)
            name = _field_name(cls, field)
            tensors = tensors_from_protos(getattr(message, name))
            message.ClearField(name)
            raw = None
            if raw_field:
                raw = getattr(message, _field_name(cls, raw_field))
                message.ClearField(_field_name(cls, raw_field))
            return message, tensors, raw
        return _walk_message(cls, data, field, raw_field)
    except DecodeError:
        raise
    except Exception as exc:  # protobuf's DecodeError and friends: the bytes are not this message
        raise DecodeError(f"malformed {cls.DESCRIPTOR.name}: {exc}") from None


def tensors_from_protos(messages) -> list:
    """Arrays viewing the contents of parsed Tensor messages; (dtype, shape) for content-less shells."""
    return [tensor_from_proto(t) if t.content or not _is_shell(t) else (t.dtype, tuple(t.shape)) for t in messages]


def _is_shell(t: pb.Tensor) -> bool:
    """A content-less element standing for a tensor that travels in parts (or an empty tensor)."""
    return math.prod(t.shape) * _np_dtype(t.dtype).itemsize != 0


def _walk_message(cls, data: bytes, field: int, raw_field: int):
    view = memoryview(data)
    pos, end = 0, len(data)
    rest, tensors, raw = [], [], None
    while pos < end:
        start = pos
        key, pos = _read_varint(data, pos, end)
        number, wire_type = key >> 3, key & 7
        if number in (field, raw_field) and wire_type == 2:
            length, pos = _read_varint(data, pos, end)
            stop = pos + length
            if stop > end:
                raise DecodeError("field runs past the end of the message")
            if number == field:
                dtype_value, shape, offset, size = _walk_tensor(data, pos, stop)
                if size == 0 and math.prod(shape) * _np_dtype(dtype_value).itemsize:
                    tensors.append((dtype_value, shape))
                else:
                    tensors.append(_checked_array(data, dtype_value, shape, offset, size))
            else:
                raw = view[pos:stop]
            pos = stop
        else:
            pos = _skip(data, pos, end, wire_type)
            rest.append(view[start:pos])
    return cls.FromString(b"".join(rest)), tensors, raw


@functools.cache
def _field_name(cls, number: int) -> str:
    return cls.DESCRIPTOR.fields_by_number[number].name


# -- attributes -------------------------------------------------------------------------------------
def attr_to_proto(value, out: pb.AttrValue) -> pb.AttrValue:
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
        out.type = _ENUM_BY_DTYPE[value]
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


def attrs_from_proto(attrs) -> dict:
    return {key: attr_from_proto(attrs[key]) for key in sorted(attrs)}


# -- nodes and graphs -------------------------------------------------------------------------------
def _source_to_proto(source: str, out: pb.SourceLocation) -> None:
    file, sep, line = source.rpartition(":")
    if sep and line.isdigit():
        out.file, out.line = file, int(line)
    else:
        out.file = source


def _source_from_proto(msg: pb.SourceLocation) -> str:
    return f"{msg.file}:{msg.line}" if msg.line else msg.file


def node_to_proto(node: ir.Node, out: pb.NodeDef) -> pb.NodeDef:
    out.name, out.op, out.device = node.name, node.op, node.device
    out.inputs.extend(node.inputs)
    out.control_inputs.extend(node.control_inputs)
    attrs_to_proto(node.attrs, out.attrs)
    _source_to_proto(node.source, out.source)
    for output in node.outputs:
        shape_to_proto(output.shape, out.output_shapes.add())
    return out


def graph_to_proto(nodes, seed=None) -> pb.GraphDef:
    graph = pb.GraphDef(format_version=GRAPH_FORMAT_VERSION)
    for node in nodes:
        node_to_proto(node, graph.nodes.add())
    if seed is not None:
        graph.seed = seed
    return graph


def _register_every_op() -> None:
    """A decoding process knows every op, not just those its own imports happened to define."""
    for module in pkgutil.iter_modules(graphexec.ops.__path__):
        importlib.import_module(f"graphexec.ops.{module.name}")


class GraphTypes:
    """What decoding needs to know of the nodes decoded so far: each tensor's abstract value."""

    def __init__(self, avals=None, output_counts=None):
        self.avals: dict[str, registry.Aval] = dict(avals or {})
        self.output_counts: dict[str, int] = dict(output_counts or {})

    def copy(self) -> GraphTypes:
        return GraphTypes(self.avals, self.output_counts)


def nodes_from_proto(graph: pb.GraphDef, known: GraphTypes) -> list[ir.Node]:
    """IR nodes of `graph`, typed by their ops' rules against `known` (which grows as they decode)."""
    if graph.format_version != GRAPH_FORMAT_VERSION:
        raise DecodeError(f"graph format version {graph.format_version} is not supported "
                          f"(this server reads version {GRAPH_FORMAT_VERSION})")
    return [node_from_proto(node, known) for node in graph.nodes]


def _where(msg: pb.NodeDef) -> str:
    source = _source_from_proto(msg.source)
    return f"node '{msg.name}' ({msg.op or 'no op'}{', created at ' + source if source else ''})"


def node_from_proto(msg: pb.NodeDef, known: GraphTypes) -> ir.Node:
    # Hot for large uploads: protobuf fields are read once each, and the error prefix is built only on errors.
    name, op, inputs, control_inputs = msg.name, msg.op, tuple(msg.inputs), tuple(msg.control_inputs)
    output_counts, avals = known.output_counts, known.avals
    if not name or name in output_counts:
        raise DecodeError(f"{_where(msg)}: node names must be unique and non-empty")
    definition = registry.REGISTRY.get(op)
    if definition is None or definition.compiler_only:
        raise DecodeError(f"{_where(msg)}: unknown op '{op}'")
    args = []
    for tensor in inputs:
        producer, index = ir.split_tensor_name(tensor)
        if index >= output_counts.get(producer, 0):
            raise DecodeError(f"{_where(msg)}: input '{tensor}' is not an output of an earlier node")
        args.append(avals[f"{producer}:{index}"])
    for control in control_inputs:
        if control not in output_counts:
            raise DecodeError(f"{_where(msg)}: control input '{control}' is not an earlier node")
    attrs = attrs_from_proto(msg.attrs)
    outputs = _with_declared_shapes(_infer_outputs(definition, args, attrs, msg), msg.output_shapes, msg)
    output_counts[name] = len(outputs)
    for i, aval in enumerate(outputs):
        avals[f"{name}:{i}"] = aval
    return ir.Node(name=name, op=op, inputs=inputs, control_inputs=control_inputs, attrs=attrs,
                   outputs=tuple(ir.TensorType(a.dtype, a.shape) for a in outputs), device=msg.device,
                   source=_source_from_proto(msg.source))


def _infer_outputs(definition, args, attrs, msg) -> list[registry.Aval]:
    """The op's rules, as graph building runs them; any failure is the sender's malformed node."""
    try:
        out = registry.infer(definition, args, attrs)
    except registry.ShapeError as exc:  # a wrong attr, arity, shape or dtype: names the attr or the rule
        raise DecodeError(f"{_where(msg)}: {exc}") from None
    except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError) as exc:  # values no builder makes
        raise DecodeError(f"{_where(msg)}: {type(exc).__name__}: {exc}") from None
    for aval in out:
        shape = aval.shape
        if not isinstance(aval.dtype, dtypes.DType) or not (
                shape is None or isinstance(shape, tuple) and all(d is None or isinstance(d, int) and d >= 0
                                                                  for d in shape)):
            raise DecodeError(f"{_where(msg)}: attributes give an invalid output type {aval.dtype!r}{shape!r}")
    return out


def _with_declared_shapes(outputs, declared, msg) -> list[registry.Aval]:
    """Merge the client's (set_shape-refined) output shapes into the inferred ones; never contradict them."""
    if not declared:
        return outputs
    if len(declared) != len(outputs):
        raise DecodeError(f"{_where(msg)}: {len(declared)} output shapes declared for {len(outputs)} outputs")
    try:
        return [registry.Aval(a.dtype, merge_shapes(a.shape, shape_from_proto(d), "declared output shape"), a.value)
                for a, d in zip(outputs, declared)]
    except ValueError as exc:
        raise DecodeError(f"{_where(msg)}: {exc}") from None


# -- plans ------------------------------------------------------------------------------------------
def plan_to_proto(plan: Plan) -> pb.Plan:
    msg = pb.Plan(compiler_version=plan.compiler_version, graph_digest=plan.graph_digest, num_slots=plan.num_slots)
    for endpoints, out in ((plan.feeds, msg.feeds), (plan.fetches, msg.fetches)):
        for e in endpoints:
            item = out.add(tensor=e.tensor, slot=e.slot, dtype=_ENUM_BY_DTYPE[e.type.dtype])
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
        out.output_dtypes.append(_ENUM_BY_DTYPE[t.dtype])
        shape_to_proto(t.shape, out.output_shapes.add())
    if registry.get(step.op).is_fused:  # the body travels in the compact operand encoding of FusedOp
        body = step.attrs["body"]
        for node, operands in zip(body.nodes, body.operands()):
            out_type = node.outputs[0]
            fused = out.fused.add(op=node.op, operands=operands, dtype=_ENUM_BY_DTYPE[out_type.dtype])
            attrs_to_proto(node.attrs, fused.attrs)
            shape_to_proto(out_type.shape, fused.shape)
    else:
        attrs_to_proto(step.attrs, out.attrs)


def plan_from_proto(msg: pb.Plan) -> Plan:
    def endpoint(e):
        return Endpoint(e.tensor, e.slot, ir.TensorType(dtype_from_enum(e.dtype), shape_from_proto(e.shape)))

    return Plan(
        graph_digest=msg.graph_digest, feeds=tuple(endpoint(e) for e in msg.feeds),
        fetches=tuple(endpoint(e) for e in msg.fetches), steps=tuple(_step_from_proto(s) for s in msg.steps),
        num_slots=msg.num_slots,
        constants={slot: _read_only(tensor_from_proto(msg.constants[slot])) for slot in sorted(msg.constants)},
        targets=tuple(msg.targets), seed=msg.seed if msg.HasField("seed") else None,
        compiler_version=msg.compiler_version)


def plan_to_bytes(plan: Plan) -> bytes:
    return plan_to_proto(plan).SerializeToString()


def plan_from_bytes(data: bytes) -> Plan:
    return plan_from_proto(pb.Plan.FromString(data))


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _step_from_proto(msg: pb.PlanStep) -> Step:
    covers = tuple(msg.covers)
    if msg.fused:
        body = ir.Subprogram.from_operands(len(msg.inputs), (
            (f.op, f.operands, attrs_from_proto(f.attrs), ir.TensorType(dtype_from_enum(f.dtype), shape_from_proto(f.shape)))
            for f in msg.fused))
        attrs = ir.Attrs({"body": body, "covers": covers})
    else:
        attrs = ir.Attrs(attrs_from_proto(msg.attrs))
    output_types = tuple(ir.TensorType(dtype_from_enum(d), shape_from_proto(s))
                         for d, s in zip(msg.output_dtypes, msg.output_shapes))
    return Step(node=msg.node, op=msg.op, attrs=attrs, inputs=tuple(msg.inputs), outputs=tuple(msg.outputs),
                free=tuple(msg.free), device=msg.device, source=_source_from_proto(msg.source), covers=covers,
                output_types=output_types)


# -- graph segments and run results ------------------------------------------------------------------
def segment_from_bytes(data: bytes) -> spb.GraphSegment:
    return spb.GraphSegment.FromString(data)


def segment_to_bytes(segment: spb.GraphSegment) -> bytes:
    """A segment as stored by content: without the seed, which belongs to a session."""
    stored = spb.GraphSegment()
    stored.CopyFrom(segment)
    stored.ClearField("seed")
    return stored.SerializeToString()


def fetches_to_bytes(fetches) -> bytes:
    """Fetched values as a RunPlanResponse (kept with an applied request id, for replays)."""
    return encode_tensor_message(b"", 1, fetches)


def fetches_from_bytes(data: bytes) -> list:
    return decode_tensor_message(wpb.RunPlanResponse, data, 1)[1]


# -- run metadata -----------------------------------------------------------------------------------
def stats_to_proto(stats, out) -> None:
    for s in stats:
        out.add(node=s.node_name, op=s.op, start_micros=s.start_micros, duration_micros=s.duration_micros,
                covers=s.covers, device=s.device, worker=s.worker)


def stats_from_proto(messages) -> list[NodeStats]:
    return [NodeStats(s.node, s.op, s.start_micros, s.duration_micros, tuple(s.covers), s.device, s.worker)
            for s in messages]


def metadata_from_proto(msg: spb.RunMetadata, out: RunMetadata) -> RunMetadata:
    """Fill a tf.RunMetadata from the server's answer."""
    out.step_stats.node_stats = stats_from_proto(msg.node_stats)
    out.plan_cache_hit = msg.plan_cache_hit
    out.plan_source = spb.PlanSource.Name(msg.plan_source).removeprefix("PLAN_SOURCE_").lower()
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


# -- errors -----------------------------------------------------------------------------------------
_STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_code(error: BaseException) -> grpc.StatusCode:
    """The gRPC status a failure travels as: tf.errors classes carry their code; others are INTERNAL."""
    if isinstance(error, errors.OpError):
        return _STATUS_BY_NUMBER.get(error.error_code, grpc.StatusCode.UNKNOWN)
    return grpc.StatusCode.INTERNAL


def error_from_status(code, message: str) -> errors.OpError:
    """The tf.errors instance for a gRPC status (a grpc.StatusCode or its number)."""
    number = code.value[0] if isinstance(code, grpc.StatusCode) else int(code)
    return errors.from_code(number, message)


_register_every_op()
