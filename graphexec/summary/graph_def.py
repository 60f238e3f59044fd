"""A graphexec graph as a TensorFlow `GraphDef` (tensorboardX's copy of the proto), for TensorBoard's graph tab.

Each node keeps its name, op, inputs (TF's spelling: "x" for output 0, "x:1", "^x" for a control edge),
device and attrs; `_output_shapes` and `T` give the edges their shapes and dtypes in TensorBoard.
Tensor-valued attrs (constants) are written as their dtype and shape only: the graph tab shows
structure, and a large constant would bloat the event file.
"""
from __future__ import annotations

import numpy as np
from tensorboardX.proto import (
    attr_value_pb2,
    graph_pb2,
    node_def_pb2,
    tensor_shape_pb2,
    types_pb2,
    versions_pb2,
)

from graphexec import dtypes, ir

# graphexec dtype name -> TF's DataType enum name
_TF_TYPES = {"float16": "DT_HALF", "float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int8": "DT_INT8",
             "int16": "DT_INT16", "int32": "DT_INT32", "int64": "DT_INT64", "uint8": "DT_UINT8",
             "uint16": "DT_UINT16", "bool": "DT_BOOL", "string": "DT_STRING"}
PRODUCER_VERSION = 27  # a TF1-era GraphDef version; TensorBoard only displays it


def tf_type(dtype: dtypes.DType) -> int:
    return types_pb2.DataType.Value(_TF_TYPES[dtype.name])


def shape_proto(shape) -> tensor_shape_pb2.TensorShapeProto:
    if shape is None:
        return tensor_shape_pb2.TensorShapeProto(unknown_rank=True)
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=-1 if d is None else int(d)) for d in shape])


def _scalar_attr(value) -> attr_value_pb2.AttrValue | None:
    if isinstance(value, dtypes.DType):
        return attr_value_pb2.AttrValue(type=tf_type(value))
    if isinstance(value, ir.ShapeAttr):
        return attr_value_pb2.AttrValue(shape=shape_proto(value.dims))
    if isinstance(value, (bool, np.bool_)):
        return attr_value_pb2.AttrValue(b=bool(value))
    if isinstance(value, (int, np.integer)):
        return attr_value_pb2.AttrValue(i=int(value))
    if isinstance(value, (float, np.floating)):
        return attr_value_pb2.AttrValue(f=float(value))
    if isinstance(value, str):
        return attr_value_pb2.AttrValue(s=value.encode())
    return None


def attr_value(value) -> attr_value_pb2.AttrValue | None:
    """The AttrValue of one graphexec attr, or None for what TensorBoard cannot show (compiler internals)."""
    if isinstance(value, np.ndarray):  # a constant: its type and shape
        kind = "DT_STRING" if value.dtype == object else _TF_TYPES[dtypes.from_numpy(value.dtype).name]
        return attr_value_pb2.AttrValue(tensor={"dtype": kind, "tensor_shape": shape_proto(value.shape)})
    if isinstance(value, (tuple, list)) and not isinstance(value, ir.ShapeAttr):
        items = [_scalar_attr(v) for v in value]
        if any(item is None for item in items):
            return None
        listed = attr_value_pb2.AttrValue.ListValue()
        for item in items:
            field = item.WhichOneof("value")
            getattr(listed, field).append(getattr(item, field))
        return attr_value_pb2.AttrValue(list=listed)
    return _scalar_attr(value)


def _input_name(tensor_name: str) -> str:
    node, _, index = tensor_name.rpartition(":")
    return node if index == "0" else tensor_name


def node_def(node: ir.Node) -> node_def_pb2.NodeDef:
    proto = node_def_pb2.NodeDef(name=node.name, op=node.op, device=node.device,
                                 input=[_input_name(t) for t in node.inputs] + [f"^{c}" for c in node.control_inputs])
    for key, value in node.attrs.items():
        converted = attr_value(value)
        if converted is not None:
            proto.attr[key].CopyFrom(converted)
    if node.outputs:
        proto.attr["_output_shapes"].list.shape.extend(shape_proto(t.shape) for t in node.outputs)
        if "T" not in proto.attr and "dtype" not in proto.attr:
            proto.attr["T"].type = tf_type(node.outputs[0].dtype)
    return proto


def graph_def(nodes) -> graph_pb2.GraphDef:
    """The GraphDef of `nodes` (graphexec IR nodes, e.g. `graph.nodes()`)."""
    return graph_pb2.GraphDef(node=[node_def(n) for n in nodes],
                              versions=versions_pb2.VersionDef(producer=PRODUCER_VERSION))
