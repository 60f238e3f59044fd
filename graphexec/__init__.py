"""graphexec: TensorFlow-1-style graphs, compiled and run in-process or on a remote service.

    import graphexec as tf
    x = tf.placeholder(tf.float32, [None, 3]); y = tf.reduce_sum(x * 2, axis=1)
    with tf.Session() as sess:                  # or tf.Session("grpc://host:port")
        print(sess.run(y, {x: [[1, 2, 3]]}))
"""
from graphexec import errors
from graphexec.config import ConfigProto, GPUOptions, RunMetadata, RunOptions
from graphexec.dtypes import (DType, as_dtype, bool, double, float16, float32, float64, half, int8, int16,  # noqa: A004
                              int32, int64, uint8, uint16)
from graphexec.framework import (Graph, Operation, Tensor, TensorShape, control_dependencies, device,
                                 get_default_graph, name_scope, reset_default_graph)
from graphexec.ops import internal_ops as _internal_ops, state_ops as _state_ops  # noqa: F401 - registers ops
from graphexec.ops.array_ops import (broadcast_to, expand_dims, fill, identity, linspace, ones,  # noqa: A004
                                     ones_like, placeholder, placeholder_with_default, range, rank, reshape, shape,
                                     size, squeeze, stop_gradient, tile, transpose, zeros, zeros_like)
from graphexec.ops.indexing_ops import gather, gather_nd, one_hot, scatter_nd
from graphexec.ops.joining_ops import concat, split, stack, unstack
from graphexec.ops.scan_ops import cumprod, cumsum
from graphexec.ops.slicing_ops import pad, slice  # noqa: A004
from graphexec.ops.control_ops import group, no_op, tuple  # noqa: A004
from graphexec.ops.convert import constant, convert_to_tensor
from graphexec.ops.math_ops import (abs, add, add_n, argmax, argmin, cast, clip_by_value, cos, divide, equal,  # noqa: A004
                                    exp, floordiv, floormod, greater, greater_equal, less, less_equal, log, log1p,
                                    logical_and, logical_not, logical_or, matmul, maximum, minimum, mod, multiply,
                                    negative, not_equal, pow, reduce_all, reduce_any, reduce_max, reduce_mean,
                                    reduce_min, reduce_prod, reduce_sum, rsqrt, sigmoid, sign, sin, sqrt, square,
                                    subtract, tanh, to_float, truediv, where, where_v2)
from graphexec.ops import overloads as _overloads  # noqa: F401 - attaches Tensor operators
from graphexec.ops.random_ops import random_normal, random_uniform, set_random_seed, truncated_normal
from graphexec.default_session import get_default_session
from graphexec.session import InteractiveSession, Session
from graphexec.gradients import gradients
from graphexec import losses, metrics, nn, train  # noqa: E402 - tf.nn, tf.train, tf.losses, tf.metrics
from graphexec.variables import (GraphKeys, Variable, assign, assign_add, assign_sub, global_variables,
                                 global_variables_initializer, initialize_all_variables, local_variables,
                                 local_variables_initializer, trainable_variables, variables_initializer)

newaxis = None
sub = subtract
div = divide
mul = multiply
neg = negative

__version__ = "0.1.0"


def get_collection(key, scope=None):
    return get_default_graph().get_collection(key, scope)


def add_to_collection(name, value):
    get_default_graph().add_to_collection(name, value)


def get_collection_ref(key):
    return get_default_graph().get_collection_ref(key)
