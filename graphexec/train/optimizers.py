"""tf.train optimizers: the TF1 Optimizer API over update ops that run inside the graph.

`minimize(loss)` = `compute_gradients` (tf.gradients w.r.t. the trainable variables) +
`apply_gradients` (one stateful Apply* op per variable, see graphexec.ops.training_ops, then the
optimizer's finishing updates and the global step increment). Slot variables (Adam's m and v...) are
ordinary non-trainable tf.Variables in GLOBAL_VARIABLES, named "<var>/<Optimizer>[_n]" as in TF, so
global_variables_initializer() initializes them and Saver saves them.
"""
from __future__ import annotations

from graphexec.ir import ShapeAttr
from graphexec.framework import Tensor, apply_op, control_dependencies, get_default_graph, name_scope
from graphexec.gradients import gradients
from graphexec.ops import training_ops  # noqa: F401 - registers the Apply* ops
from graphexec.ops.array_ops import shape
from graphexec.ops.array_ops import fill
from graphexec.ops.control_ops import group
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.math_ops import cast, multiply
from graphexec.variables import Variable, trainable_variables


class Optimizer:
    """Base class: subclasses declare their slots and build one update op per variable."""

    GATE_NONE, GATE_OP, GATE_GRAPH = 0, 1, 2
    SLOTS: tuple[tuple[str, float], ...] = ()  # (slot name, initial value), in the order the update op reads them

    def __init__(self, use_locking=False, name="Optimizer"):
        if not name:
            raise ValueError("Must specify the optimizer name")
        self._name = name
        self._use_locking = use_locking
        self._slots: dict[str, dict[str, Variable]] = {}
        self._non_slots: dict[str, Variable] = {}

    def get_name(self):
        return self._name

    # -- the TF1 API ----------------------------------------------------------------------------
    def minimize(self, loss, global_step=None, var_list=None, gate_gradients=GATE_OP, aggregation_method=None,
                 colocate_gradients_with_ops=False, name=None, grad_loss=None):
        grads_and_vars = self.compute_gradients(loss, var_list=var_list, grad_loss=grad_loss)
        if not any(g is not None for g, _ in grads_and_vars):
            raise ValueError(f"No gradients provided for any variable, check your graph for ops that do not support "
                             f"gradients, between variables {[v.name for _, v in grads_and_vars]} and loss {loss}.")
        return self.apply_gradients(grads_and_vars, global_step=global_step, name=name)

    def compute_gradients(self, loss, var_list=None, gate_gradients=GATE_OP, aggregation_method=None,
                          colocate_gradients_with_ops=False, grad_loss=None):
        """[(gradient or None, variable)] for `var_list` (default: the trainable variables)."""
        if callable(loss):
            raise NotImplementedError("loss must be a tensor (eager-style callables are not supported)")
        loss = convert_to_tensor(loss)
        var_list = list(var_list) if var_list is not None else trainable_variables()
        if not var_list:
            raise ValueError("No variables to optimize.")
        grads = gradients(loss, var_list, grad_ys=None if grad_loss is None else [grad_loss])
        return list(zip(grads, var_list))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """One op applying every (gradient, variable) pair, then incrementing `global_step`."""
        pairs = [(g, v) for g, v in grads_and_vars]
        for g, v in pairs:
            if not isinstance(v, Variable):
                raise TypeError(f"apply_gradients needs tf.Variables, got {v!r}")
        present = [(convert_to_tensor(g), v) for g, v in pairs if g is not None]
        if not present:
            raise ValueError(f"No gradients provided for any variable: {[v.name for _, v in pairs]}.")
        graph = present[0][1].graph
        with graph.as_default():
            self._create_slots([v for _, v in present])
            with name_scope(name or self._name) as scope:
                updates = []
                for grad, var in present:
                    with name_scope("update_" + var._var_name):
                        updates.append(self._apply_dense(grad, var))
                finish = self._finish(updates, scope)
            if global_step is None:
                return finish
            with control_dependencies([finish]):
                return global_step.assign_add(convert_to_tensor(1, dtype=global_step.dtype), name=name).op

    def get_slot(self, var, name):
        return self._slots.get(name, {}).get(var._var_name)

    def get_slot_names(self):
        return sorted(name for name, _ in self.SLOTS)

    def variables(self):
        """The optimizer's own variables: its slots and non-slot variables (e.g. Adam's beta powers)."""
        own = [v for slots in self._slots.values() for v in slots.values()] + list(self._non_slots.values())
        return sorted(own, key=lambda v: v.name)

    # -- for subclasses -------------------------------------------------------------------------
    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        raise NotImplementedError

    def _finish(self, update_ops, name):
        return group(*update_ops, name=name)

    def _create_slots(self, var_list):
        for var in var_list:
            for index, (slot, initial) in enumerate(self.SLOTS):
                self._slot_for(var, slot, initial, index)

    def _slot_for(self, var: Variable, slot: str, initial: float, index: int) -> Variable:
        per_var = self._slots.setdefault(slot, {})
        if var._var_name not in per_var:
            suffix = f"_{index}" if index else ""
            per_var[var._var_name] = _filled_variable(var, initial, f"{var._var_name}/{self._name}{suffix}")
        return per_var[var._var_name]

    def _non_slot(self, name: str, initial: float, dtype) -> Variable:
        if name not in self._non_slots:
            with get_default_graph().name_scope(""):
                self._non_slots[name] = Variable(lambda: convert_to_tensor(initial, dtype=dtype), name=name,
                                                 trainable=False)
        return self._non_slots[name]

    def _update(self, op_type: str, var: Variable, inputs, **attrs) -> Tensor:
        """The Apply* op for `var`, its hyperparameters cast to the variable's dtype."""
        tensors = [convert_to_tensor(x, dtype=var.dtype) for x in inputs]
        slots = tuple(self._slots[s][var._var_name]._var_name for s, _ in self.SLOTS)
        attrs = {"var": var._var_name, "slots": slots, "dtype": var.dtype, "shape": ShapeAttr(var.shape.dims),
                 **attrs}
        return apply_op(op_type, tensors, attrs, op_type).outputs[0]


def _filled_variable(var: Variable, value: float, name: str) -> Variable:
    """A non-trainable variable shaped like `var` and filled with `value`, created at the graph's root.

    The initial value is built inside the Variable (a callable), hence outside any control
    dependencies the caller is under: initializing a slot must not run the caller's update ops."""
    def initial():
        dims = var.shape.dims
        known = dims is not None and None not in dims
        return fill(list(dims) if known else shape(var.initial_value), convert_to_tensor(value, dtype=var.dtype))

    graph = var.graph
    with graph.as_default(), graph.name_scope(""):
        return Variable(initial, name=name, trainable=False)


def _as_float(value, what):
    if isinstance(value, (Tensor, Variable)) or callable(value):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number or a tensor, got {value!r}") from None


class GradientDescentOptimizer(Optimizer):
    def __init__(self, learning_rate, use_locking=False, name="GradientDescent"):
        super().__init__(use_locking, name)
        self._learning_rate = _as_float(learning_rate, "learning_rate")

    def _apply_dense(self, grad, var):
        return self._update("ApplyGradientDescent", var, [self._learning_rate, grad])


class MomentumOptimizer(Optimizer):
    """accum = momentum * accum + grad; var -= lr * accum (Nesterov: var -= lr * (grad + momentum * accum))."""

    SLOTS = (("momentum", 0.0),)

    def __init__(self, learning_rate, momentum, use_locking=False, name="Momentum", use_nesterov=False):
        super().__init__(use_locking, name)
        self._learning_rate = _as_float(learning_rate, "learning_rate")
        self._momentum = _as_float(momentum, "momentum")
        self._use_nesterov = bool(use_nesterov)

    def _apply_dense(self, grad, var):
        return self._update("ApplyMomentum", var, [self._learning_rate, grad, self._momentum],
                            use_nesterov=self._use_nesterov)


class AdamOptimizer(Optimizer):
    """Adam (Kingma & Ba), as TF1: bias correction through the beta1_power/beta2_power variables."""

    SLOTS = (("m", 0.0), ("v", 0.0))

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, use_locking=False, name="Adam"):
        super().__init__(use_locking, name)
        self._learning_rate = _as_float(learning_rate, "learning_rate")
        self._beta1, self._beta2, self._epsilon = float(beta1), float(beta2), float(epsilon)

    def _create_slots(self, var_list):
        first = min(var_list, key=lambda v: v.name)
        self._non_slot("beta1_power", self._beta1, first.dtype)
        self._non_slot("beta2_power", self._beta2, first.dtype)
        super()._create_slots(var_list)

    def _powers(self, dtype):
        return [cast(self._non_slots[name], dtype) for name in ("beta1_power", "beta2_power")]

    def _apply_dense(self, grad, var):
        beta1_power, beta2_power = self._powers(var.dtype)
        return self._update("ApplyAdam", var, [beta1_power, beta2_power, self._learning_rate, self._beta1,
                                               self._beta2, self._epsilon, grad])

    def _finish(self, update_ops, name):
        beta1_power, beta2_power = self._non_slots["beta1_power"], self._non_slots["beta2_power"]
        with control_dependencies(update_ops):
            advance = [beta1_power.assign(multiply(beta1_power, self._beta1), name="update_beta1_power"),
                       beta2_power.assign(multiply(beta2_power, self._beta2), name="update_beta2_power")]
        return group(*update_ops, *advance, name=name)


class RMSPropOptimizer(Optimizer):
    """TF1's RMSProp: the mean square starts at one; optional momentum and centering."""

    def __init__(self, learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10, use_locking=False, centered=False,
                 name="RMSProp"):
        super().__init__(use_locking, name)
        self._learning_rate = _as_float(learning_rate, "learning_rate")
        self._decay, self._momentum, self._epsilon = float(decay), float(momentum), float(epsilon)
        self._centered = bool(centered)
        self.SLOTS = (("rms", 1.0), ("momentum", 0.0)) + ((("mg", 0.0),) if centered else ())

    def _apply_dense(self, grad, var):
        return self._update("ApplyRMSProp", var, [self._learning_rate, self._decay, self._momentum, self._epsilon,
                                                  grad], centered=self._centered)


class AdagradOptimizer(Optimizer):
    def __init__(self, learning_rate, initial_accumulator_value=0.1, use_locking=False, name="Adagrad"):
        if initial_accumulator_value <= 0.0:
            raise ValueError(f"initial_accumulator_value must be positive: {initial_accumulator_value}")
        super().__init__(use_locking, name)
        self._learning_rate = _as_float(learning_rate, "learning_rate")
        self.SLOTS = (("accumulator", float(initial_accumulator_value)),)

    def _apply_dense(self, grad, var):
        return self._update("ApplyAdagrad", var, [self._learning_rate, grad])


__all__ = ["Optimizer", "GradientDescentOptimizer", "MomentumOptimizer", "AdamOptimizer", "RMSPropOptimizer",
           "AdagradOptimizer"]
