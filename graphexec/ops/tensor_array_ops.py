"""tf.TensorArray, minimal: the per-step results of a loop, kept as the rows of one tensor.

A TensorArray is a value, like TF1's: `write` returns a new TensorArray, and a loop carries it as a
loop variable (while_loop unwraps it to its rows tensor and wraps the results again). Writes append:
the index written must be the number of rows so far, as dynamic_rnn, map_fn and scan write them (TF1
forbids writing an index twice too). `read`, `gather`, `stack`, `unstack` and `size` cover TF1's
dynamic_rnn; `stack` and `read` are differentiable.
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes, errors
from graphexec.framework import Tensor, apply_op, name_scope
from graphexec.ops.array_ops import reshape
from graphexec.ops.array_ops import shape as shape_of
from graphexec.ops.control_ops import no_op
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.indexing_ops import gather
from graphexec.ops.registry import ShapeError, op
from graphexec.ops.shape_inputs import check_index_dtype

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["TensorArray"]


def _append_row_shape(args, attrs):
    rows, index, value = args
    check_index_dtype(index, "index")
    if index.rank not in (0, None):
        raise ShapeError(f"index must be a scalar, got rank {index.rank}")
    if rows.dtype is not value.dtype:
        raise ShapeError(f"rows are {rows.dtype.name} but the value is {value.dtype.name}")
    if rows.rank is not None and value.rank is not None and rows.rank == value.rank + 1:
        return (None, *value.shape)
    return None


def _append_row(ctx, rows, index, value):
    if int(index) != rows.shape[0]:
        raise errors.InvalidArgumentError(None, None, f"TensorArray writes append: index {int(index)} written "
                                                      f"with {rows.shape[0]} rows so far")
    if rows.shape[0] == 0:  # the empty start (a [0] vector) takes the shape of the first row
        return ctx.xp.expand_dims(value, 0).copy()
    return ctx.xp.concatenate([rows, ctx.xp.expand_dims(value, 0)], axis=0)


def _append_row_grad(op, dy):
    rows = op.inputs[0]
    return [reshape(dy[:-1], shape_of(rows)), None, dy[-1]]


# `rows` with `value` added as row `index` (which must be the next row).
AppendRow = op("AppendRow", shape=_append_row_shape, dtype=lambda args, attrs: args[0].dtype, kernel=_append_row,
               grad=_append_row_grad, inputs=("rows", "index", "value"))


def empty_rows(dtype) -> Tensor:
    """No rows yet: a [0] vector, which the first write reshapes to the rows' shape."""
    dtype = dtypes.as_dtype(dtype)
    return apply_op("Const", (), {"value": np.zeros((0,), dtype.np), "dtype": dtype}, "empty_rows").outputs[0]


class TensorArray:
    """tf.TensorArray(dtype, size=..., dynamic_size=..., element_shape=...): rows written one per step."""

    def __init__(self, dtype, size=None, dynamic_size=None, clear_after_read=None, tensor_array_name=None,
                 handle=None, flow=None, infer_shape=True, element_shape=None, colocate_with_first_write_call=True,
                 name=None, _rows=None):
        self._dtype = dtypes.as_dtype(dtype)
        self._element_shape = None if element_shape is None else tuple(getattr(element_shape, "dims", element_shape))
        if _rows is None:
            with name_scope(name or tensor_array_name, "TensorArray"):
                _rows = empty_rows(self._dtype)
        self._rows = _rows

    dtype = property(lambda self: self._dtype)
    flow = property(lambda self: self._rows)  # the tensor a loop carries (TF1's flow)

    @property
    def element_shape(self):
        from_rows = self._rows._shape[1:] if self._rows._shape is not None and len(self._rows._shape) > 1 else None
        return self._element_shape if self._element_shape is not None else from_rows

    def _with_rows(self, rows: Tensor, element_shape=None) -> TensorArray:
        shape = self._element_shape if element_shape is None else element_shape
        return TensorArray(self._dtype, element_shape=shape, _rows=rows)

    def write(self, index, value, name=None) -> TensorArray:
        value = convert_to_tensor(value, dtype=self._dtype)
        index = convert_to_tensor(index, dtype=dtypes.int32)
        rows = apply_op("AppendRow", (self._rows, index, value), {}, name or "TensorArrayWrite").outputs[0]
        return self._with_rows(rows, value._shape)

    def read(self, index, name=None) -> Tensor:
        return gather(self._rows, index, name=name or "TensorArrayRead")

    def gather(self, indices, element_shape=None, name=None) -> Tensor:
        return gather(self._rows, indices, name=name or "TensorArrayGather")

    def stack(self, name=None) -> Tensor:
        rows, shape = self._rows, self.element_shape
        if rows._shape is None and shape is not None and None not in shape:  # an empty start has rank 1
            rows = reshape(rows, [-1, *shape], name=name)
        return rows

    def unstack(self, value, name=None) -> TensorArray:
        return self._with_rows(convert_to_tensor(value, dtype=self._dtype))

    def size(self, name=None) -> Tensor:
        return shape_of(self._rows, name=name)[0]

    def identity(self) -> TensorArray:
        return self

    def close(self, name=None):
        return no_op(name=name)
