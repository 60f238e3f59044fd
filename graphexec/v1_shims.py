"""TF1 names kept for old programs: aliases of graphexec ops under their pre-1.0 spellings, and the
switches TF 2 added for TF1 code (disable_v2_behavior, disable_eager_execution), which are no-ops here:
graphexec is always TF1 graph mode. Checked against tf.compat.v1 of TF 2.21."""
from __future__ import annotations

import contextlib

from graphexec import dtypes
from graphexec.framework import name_scope
from graphexec.ops.array_ops import expand_dims, range as range_of, reshape, shape, size
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.indexing_ops import one_hot
from graphexec.ops.joining_ops import concat
from graphexec.ops.math_ops import cast, multiply
from graphexec.ops.reduction_ops import argmax, argmin

__all__ = ["arg_max", "arg_min", "to_int32", "to_int64", "to_double", "diag", "container", "executing_eagerly",
           "disable_v2_behavior", "disable_eager_execution", "enable_eager_execution", "enable_v2_behavior",
           "disable_resource_variables", "disable_control_flow_v2", "disable_tensor_equality",
           "disable_v2_tensorshape"]


def arg_max(input, dimension, output_type=dtypes.int64, name=None):  # noqa: A002 - TF's name
    return argmax(input, axis=dimension, output_type=output_type, name=name or "ArgMax")


def arg_min(input, dimension, output_type=dtypes.int64, name=None):  # noqa: A002 - TF's name
    return argmin(input, axis=dimension, output_type=output_type, name=name or "ArgMin")


def to_int32(x, name="ToInt32"):
    return cast(x, dtypes.int32, name)


def to_int64(x, name="ToInt64"):
    return cast(x, dtypes.int64, name)


def to_double(x, name="ToDouble"):
    return cast(x, dtypes.float64, name)


def diag(diagonal, name=None):
    """tf.diag: a tensor of shape diagonal.shape + diagonal.shape, zero but for diagonal's values at
    [i..., i...] (for a vector, the square matrix with it on the diagonal)."""
    diagonal = convert_to_tensor(diagonal)
    with name_scope(name, "Diag") as scope:
        flat = reshape(diagonal, [-1])
        count = size(flat)
        square = multiply(expand_dims(flat, -1), one_hot(range_of(count), count, dtype=diagonal.dtype))
        return reshape(square, concat([shape(diagonal), shape(diagonal)], 0), name=scope)


@contextlib.contextmanager
def container(container_name):
    """Accepted for TF1 programs and does nothing: graphexec keeps variables in the session's container
    (ConfigProto(container=...) remotely), and tf.Session.reset clears a container."""
    yield container_name


def executing_eagerly() -> bool:
    return False


def _graph_mode_already(*args, **kwargs) -> None:
    """A no-op: graphexec always builds TF1 graphs."""


disable_v2_behavior = disable_eager_execution = disable_resource_variables = _graph_mode_already
disable_control_flow_v2 = disable_tensor_equality = disable_v2_tensorshape = _graph_mode_already


def enable_eager_execution(*args, **kwargs):
    raise NotImplementedError("graphexec runs TF1 graphs only: eager execution is not supported (see docs/api.md)")


def enable_v2_behavior(*args, **kwargs):
    raise NotImplementedError("graphexec runs TF1 graphs only: TF2 behavior is not supported (see docs/api.md)")
