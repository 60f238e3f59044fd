"""graphexec: TensorFlow-1-style graphs, compiled and run in-process or on a remote service.

    import graphexec as tf
    x = tf.placeholder(tf.float32, [None, 3]); y = tf.reduce_sum(x * 2, axis=1)
    with tf.Session() as sess:                  # or tf.Session("grpc://host:port")
        print(sess.run(y, {x: [[1, 2, 3]]}))
"""
from graphexec import errors
from graphexec.config import ConfigProto, GPUOptions, RunMetadata, RunOptions
from graphexec.dtypes import (DType, as_dtype, bool, double, float16, float32, float64, half, int8, int16,  # noqa: A004
                              int32, int64, string, uint8, uint16)
from graphexec.framework import (Graph, Operation, Tensor, TensorShape, control_dependencies, device,
                                 get_default_graph, name_scope, reset_default_graph)
# Each op family's public API is its __all__: adding an op to a family adds it here too.
from graphexec.ops.array_ops import *  # noqa: F401,F403,A004
from graphexec.ops.clip_ops import *  # noqa: F401,F403
from graphexec.ops.control_ops import *  # noqa: F401,F403,A004
from graphexec.ops.convert import *  # noqa: F401,F403
from graphexec.ops.indexing_ops import *  # noqa: F401,F403
from graphexec.ops.joining_ops import *  # noqa: F401,F403
from graphexec.ops.linalg_ops import *  # noqa: F401,F403
from graphexec.ops.math_ops import *  # noqa: F401,F403,A004
from graphexec.ops.random_ops import *  # noqa: F401,F403
from graphexec.ops.reduction_ops import *  # noqa: F401,F403
from graphexec.ops.scan_ops import *  # noqa: F401,F403
from graphexec.ops.slicing_ops import *  # noqa: F401,F403,A004
from graphexec.ops.scatter_ops import *  # noqa: F401,F403
from graphexec.ops.segment_ops import *  # noqa: F401,F403
from graphexec.ops.string_ops import *  # noqa: F401,F403
from graphexec.ops import every_op as _every_op, overloads as _overloads  # noqa: F401 - all ops; Tensor operators
from graphexec.default_session import get_default_session
from graphexec.session import InteractiveSession, Session
from graphexec.gradients import gradients
from graphexec import losses, metrics, nn, train  # noqa: E402 - tf.nn, tf.train, tf.losses, tf.metrics
from graphexec import linalg, math, random, strings  # noqa: E402 - tf.linalg, tf.math, tf.random, tf.strings
from graphexec import summary  # noqa: E402 - tf.summary
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
