"""The global step (an int64 variable in the GLOBAL_STEP collection) and learning-rate schedules."""
from __future__ import annotations

from graphexec import dtypes
from graphexec.framework import get_default_graph, name_scope
from graphexec.ops import math_ops
from graphexec.ops.convert import constant, convert_to_tensor
from graphexec.variables import GraphKeys, Variable


def get_global_step(graph=None):
    """The graph's global step variable, or None if it has none."""
    graph = graph or get_default_graph()
    steps = graph.get_collection(GraphKeys.GLOBAL_STEP)
    if len(steps) > 1:
        raise TypeError("There should be only one global step variable, found several in the GLOBAL_STEP collection.")
    return steps[0] if steps else None


def create_global_step(graph=None):
    graph = graph or get_default_graph()
    if get_global_step(graph) is not None:
        raise ValueError('"global_step" already exists.')
    with graph.as_default(), graph.name_scope(""):
        return Variable(lambda: _zero_int64(), name="global_step", trainable=False,
                        collections=[GraphKeys.GLOBAL_VARIABLES, GraphKeys.GLOBAL_STEP])


def get_or_create_global_step(graph=None):
    graph = graph or get_default_graph()
    return get_global_step(graph) or create_global_step(graph)


def global_step(sess, global_step_tensor):
    """The current value of the global step, as a Python int."""
    return int(sess.run(global_step_tensor))


def _zero_int64():
    return constant(0, dtype=dtypes.int64)


def exponential_decay(learning_rate, global_step, decay_steps, decay_rate, staircase=False, name=None):
    """learning_rate * decay_rate ** (global_step / decay_steps), the exponent floored when `staircase`."""
    if global_step is None:
        raise ValueError("global_step is required for exponential_decay.")
    with name_scope(name, "ExponentialDecay") as scope:
        rate = convert_to_tensor(learning_rate, dtype=dtypes.float32)
        step = math_ops.cast(global_step, rate.dtype)
        steps = convert_to_tensor(decay_steps, dtype=rate.dtype)
        exponent = math_ops.floordiv(step, steps) if staircase else math_ops.truediv(step, steps)
        decay = math_ops.pow(convert_to_tensor(decay_rate, dtype=rate.dtype), exponent)
        return math_ops.multiply(rate, decay, name=scope)
