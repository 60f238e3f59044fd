"""tf.train.ExponentialMovingAverage: shadow variables that follow other variables (or tensors).

`apply(var_list)` creates one non-trainable shadow per item, named "<name>/ExponentialMovingAverage" and
initialized to the variable's initial value (a tensor's shadow starts at zero), and returns the op that
moves each shadow towards its item: shadow -= (1 - decay) * (shadow - value), where with `num_updates`
the decay is min(decay, (1 + num_updates) / (10 + num_updates)), as TF1.
"""
from __future__ import annotations

from graphexec.framework import Tensor, control_dependencies, get_default_graph, name_scope
from graphexec.ops.array_ops import zeros_like
from graphexec.ops.control_ops import group
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.math_ops import cast, minimum, multiply, subtract, truediv
from graphexec.variables import GraphKeys, Variable

MOVING_AVERAGE_VARIABLES = "moving_average_variables"  # TF1's GraphKeys.MOVING_AVERAGE_VARIABLES

__all__ = ["ExponentialMovingAverage"]


def _name_of(item) -> str:
    return item._var_name if isinstance(item, Variable) else item.op.name


class ExponentialMovingAverage:
    def __init__(self, decay, num_updates=None, zero_debias=False, name="ExponentialMovingAverage"):
        if zero_debias:
            raise NotImplementedError("ExponentialMovingAverage(zero_debias=True) is not supported (see docs/api.md)")
        self._decay = decay
        self._num_updates = num_updates
        self._name = name
        self._averages: dict[str, Variable] = {}

    @property
    def name(self) -> str:
        return self._name

    def apply(self, var_list=None):
        """Create the shadows of `var_list` (default: the trainable variables) and return the update op."""
        graph = get_default_graph()
        items = list(var_list) if var_list is not None else graph.get_collection(GraphKeys.TRAINABLE_VARIABLES)
        for item in items:
            if not (isinstance(item, Variable) or isinstance(item, Tensor)) or not item.dtype.is_floating:
                raise TypeError(f"The variables must be half, float, or double: {item!r}")
            key = _name_of(item)
            if key in self._averages:
                raise ValueError(f"Moving average already computed for: {key}")
            self._averages[key] = self._shadow(item, graph)
        with name_scope(self._name) as scope:
            decay = convert_to_tensor(self._decay, name="decay")
            if self._num_updates is not None:
                updates = cast(self._num_updates, decay.dtype)
                decay = minimum(decay, truediv(updates + 1.0, updates + 10.0))
            moves = []
            for item in items:
                shadow = self._averages[_name_of(item)]
                value = item.read_value() if isinstance(item, Variable) else item
                with name_scope(shadow._var_name.split("/")[-1]):
                    step = multiply(subtract(shadow, value), subtract(1.0, cast(decay, shadow.dtype)))
                    moves.append(shadow.assign_sub(step))
            return group(*moves, name=scope)

    def _shadow(self, item, graph) -> Variable:
        with graph.as_default(), graph.name_scope(""), control_dependencies(None):
            initial = item.initialized_value() if isinstance(item, Variable) else zeros_like(item)
            shadow = Variable(initial, name=f"{_name_of(item)}/{self._name}", trainable=False)
        graph.add_to_collection(MOVING_AVERAGE_VARIABLES, item)
        return shadow

    def average(self, var):
        """The shadow variable of `var`, or None when apply() did not cover it."""
        return self._averages.get(_name_of(var))

    def average_name(self, var) -> str:
        return f"{_name_of(var)}/{self._name}"

    def variables_to_restore(self, moving_avg_variables=None) -> dict:
        """Checkpoint name -> variable, as TF1: each averaged variable (default: the trainable ones and
        those apply() covered) under its shadow's name, so a Saver built on it loads the averages into the
        model; every other global variable under its own name."""
        graph = get_default_graph()
        if moving_avg_variables is None:
            moving_avg_variables = (graph.get_collection(GraphKeys.TRAINABLE_VARIABLES)
                                    + graph.get_collection(MOVING_AVERAGE_VARIABLES))
        averaged = {_name_of(v): v for v in moving_avg_variables if isinstance(v, Variable)}
        restore = {self.average_name(v): v for v in averaged.values()}
        for var in graph.get_collection(GraphKeys.GLOBAL_VARIABLES):
            if var._var_name not in averaged and var._var_name not in restore:
                restore[var._var_name] = var
        return restore
