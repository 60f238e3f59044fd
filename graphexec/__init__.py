"""graphexec: TensorFlow-1-style graphs, compiled and run in-process or on a remote service.

    import graphexec as tf
    x = tf.placeholder(tf.float32, [None, 3]); y = tf.reduce_sum(x * 2, axis=1)
    with tf.Session() as sess:                  # or tf.Session("grpc://host:port")
        print(sess.run(y, {x: [[1, 2, 3]]}))
"""

from graphexec import api_gaps, errors, lazy
from graphexec.config import ConfigProto, GPUOptions, RunMetadata, RunOptions
from graphexec.dtypes import (DType, as_dtype, bool, double, float16, float32, float64, half, int8, int16,  # noqa: A004
                              int32, int64, string, uint8, uint16)
from graphexec.framework import (Graph, Operation, Tensor, TensorShape, control_dependencies, device,
                                 get_default_graph, name_scope, reset_default_graph)
# Each op family's public API is its __all__: adding an op to a family adds it here too.
from graphexec.ops.array_ops import *  # noqa: F401,F403,A004
from graphexec.ops.clip_ops import *  # noqa: F401,F403
from graphexec.ops.control_ops import *  # noqa: F401,F403,A004
from graphexec.ops.control_flow_ops import *  # noqa: F401,F403
from graphexec.ops.loop_ops import *  # noqa: F401,F403
from graphexec.ops.tensor_array_ops import *  # noqa: F401,F403
from graphexec.ops.convert import *  # noqa: F401,F403
from graphexec.ops.debug_ops import *  # noqa: F401,F403,A004
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
from graphexec import debugging  # noqa: E402 - tf.debugging
from graphexec.debugging import (assert_equal, assert_greater, assert_greater_equal, assert_integer, assert_less,  # noqa: E402,F401
                                 assert_less_equal, assert_negative, assert_non_negative, assert_non_positive,
                                 assert_none_equal, assert_positive, assert_rank, assert_rank_at_least, assert_scalar,
                                 assert_type, is_finite, is_inf, is_nan, assert_near, is_non_decreasing,
                                 is_numeric_tensor, is_strictly_increasing)
from graphexec import summary  # noqa: E402 - tf.summary
from graphexec import estimator  # noqa: E402 - tf.estimator
from graphexec.variables import (GraphKeys, Variable, assign, assign_add, assign_sub, global_variables,
                                 global_variables_initializer, initialize_all_variables, local_variables,
                                 local_variables_initializer, trainable_variables, variables_initializer)

from graphexec.v1_shims import *  # noqa: E402,F401,F403 - TF1's old names and v2 switches
from graphexec import gfile, tf_logging as logging  # noqa: E402 - tf.gfile, tf.logging
from graphexec import compat  # noqa: E402 - tf.compat.v1 is this module

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

# TF1 variable scopes, initializers, tf.layers and tf.contrib.layers
from graphexec import initializers  # noqa: E402
from graphexec.initializers import tables_initializer  # noqa: E402
from graphexec.variable_scope import (AUTO_REUSE, VariableScope, get_local_variable, get_variable,  # noqa: E402
                                      get_variable_scope, no_regularizer, variable_scope)

zeros_initializer = initializers.Zeros
ones_initializer = initializers.Ones
constant_initializer = initializers.Constant
random_uniform_initializer = initializers.RandomUniform
random_normal_initializer = initializers.RandomNormal
truncated_normal_initializer = initializers.TruncatedNormal
variance_scaling_initializer = initializers.VarianceScaling
glorot_uniform_initializer = initializers.GlorotUniform
glorot_normal_initializer = initializers.GlorotNormal
orthogonal_initializer = initializers.Orthogonal

from graphexec import contrib, layers  # noqa: E402 - tf.layers, tf.contrib.layers

# tf.app and tf.flags (absl's, as TF1's) load on first use (PEP 562): absl's app and flags cost a tenth of
# `import graphexec`, and few programs use them. Other TF1 names graphexec lacks say so (see api_gaps).
__getattr__, __dir__ = lazy.attributes(globals(), {"app": ("graphexec.app", None), "flags": ("graphexec.app", "flags")},
                                       api_gaps.missing_names("", __name__))

from graphexec import data  # noqa: E402 - tf.data (input pipelines run in the client: graphexec/data/)
from graphexec import io  # noqa: E402 - tf.io: TFRecord files, Example parsing
from graphexec.ops.parsing_ops import *  # noqa: E402,F401,F403 - tf.parse_example, tf.FixedLenFeature...
python_io = io  # TF1's tf.python_io.TFRecordWriter / tf_record_iterator
