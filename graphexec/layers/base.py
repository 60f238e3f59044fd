"""The TF1 `tf.layers.Layer`: variables through tf.get_variable in the layer's variable scope, ops in the
name scope that scope opened, and the scope fixed at the first call (later calls share the variables).

As TF's legacy layers: a layer with no name takes `variable_scope(None, default_name=<snake_case class>)`
("dense", "dense_1", ...); a functional call with `name=` and `reuse=` captures `variable_scope(name)`.
"""
from __future__ import annotations

import re

from graphexec import dtypes
from graphexec.framework import Tensor, get_default_graph
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.math_ops import cast
from graphexec.variable_scope import VariableScope, get_variable, variable_scope
from graphexec.variables import GraphKeys

_LAYER_NAME_UIDS = ("__layer_name_uids",)


def snake_case(name: str) -> str:
    spaced = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", spaced).lower()


def _unique_layer_name(base: str) -> str:
    graph = get_default_graph()
    uids = graph.get_collection(_LAYER_NAME_UIDS)
    if not uids:
        uids = [{}]
        graph.add_to_collection(_LAYER_NAME_UIDS, uids[0])
    counts = uids[0]
    count = counts.get(base, 0)
    counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def training_as_float(training, dtype) -> Tensor | None:
    """None for a Python bool (the caller picks a branch now); else the flag as 0.0 / 1.0 of `dtype`."""
    if isinstance(training, bool) or training is None:
        return None
    return cast(convert_to_tensor(training, dtype=dtypes.bool), dtype)


class Layer:
    """Base of the tf.layers classes: `build(input_shape)` makes the weights, `call(inputs)` the ops."""

    def __init__(self, trainable=True, name=None, dtype=None, _scope=None, _reuse=None, **kwargs):
        self.trainable = trainable
        self.built = False
        self.dtype = None if dtype is None else dtypes.as_dtype(dtype)
        self._reuse = _reuse
        self._trainable_weights, self._non_trainable_weights = [], []
        self._updates, self._losses = [], []
        base = snake_case(type(self).__name__)
        if isinstance(name, VariableScope):
            self._base_name, self.name = name.name, _unique_layer_name(base)
        elif name:
            self._base_name, self.name = name, name
        else:
            self._base_name, self.name = base, _unique_layer_name(base)
        self._scope = None
        if _scope:
            with variable_scope(_scope) as captured:
                self._scope = captured
        self._current_scope = None

    # -- weights ------------------------------------------------------------------------------------------------
    def add_weight(self, name, shape, dtype=None, initializer=None, regularizer=None, trainable=True,
                   constraint=None, **kwargs):
        self._set_scope(None)
        dtype = dtypes.as_dtype(dtype or self.dtype or dtypes.float32)
        graph = get_default_graph()
        losses_before = len(graph.get_collection(GraphKeys.REGULARIZATION_LOSSES))
        with variable_scope(self._scope, reuse=self.built or self._reuse, auxiliary_name_scope=False) as scope:
            self._current_scope = scope
            with graph.name_scope(scope.original_name_scope):
                variable = get_variable(name, shape=shape, dtype=dtype,
                                        initializer=initializer if initializer is not None else scope.initializer,
                                        regularizer=regularizer, trainable=trainable and self.trainable,
                                        constraint=constraint)
        # get_variable adds a new variable's regularization loss to the collection; the layer keeps it too
        self._losses += graph.get_collection(GraphKeys.REGULARIZATION_LOSSES)[losses_before:]
        if not any(variable is w for w in self.weights):
            (self._trainable_weights if trainable and self.trainable else self._non_trainable_weights).append(variable)
        return variable

    @property
    def trainable_weights(self):
        return list(self._trainable_weights) if self.trainable else []

    @property
    def non_trainable_weights(self):
        if self.trainable:
            return list(self._non_trainable_weights)
        return self._trainable_weights + self._non_trainable_weights

    @property
    def weights(self):
        return self._trainable_weights + self._non_trainable_weights

    variables = weights
    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    @property
    def updates(self):
        return list(self._updates)

    @property
    def losses(self):
        return list(self._losses)

    def add_update(self, update):
        self._updates.append(update)

    @property
    def scope_name(self):
        if not self._scope:
            raise ValueError(f'No name available for layer scope because the layer "{self.name}" has not been used '
                             "yet. The scope name  is determined the first time the layer instance is called. You "
                             "must therefore call the layer before querying `scope_name`.")
        return self._scope.name

    # -- calling --------------------------------------------------------------------------------------------------
    def _set_scope(self, scope=None):
        if self._scope is None:
            if self._reuse:
                with variable_scope(scope if scope is not None else self._base_name) as captured:
                    self._scope = captured
            else:
                with variable_scope(scope, default_name=self._base_name) as captured:
                    self._scope = captured

    def build(self, input_shape):
        self.built = True

    def call(self, inputs, **kwargs):
        return inputs

    def __call__(self, inputs, *args, **kwargs):
        self._set_scope(kwargs.pop("scope", None))
        graph = get_default_graph()
        updates_before = len(self._updates)
        with variable_scope(self._scope, reuse=True if self.built else self._reuse,
                            auxiliary_name_scope=False) as scope:
            self._current_scope = scope
            with graph.name_scope(scope.original_name_scope):
                if not self.built:
                    if self.dtype is None:
                        first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
                        self.dtype = convert_to_tensor(first).dtype
                    shapes = ([convert_to_tensor(i).shape for i in inputs] if isinstance(inputs, (list, tuple))
                              else convert_to_tensor(inputs).shape)
                    self.build(shapes)
                    self.built = True
                outputs = self.call(inputs, *args, **kwargs)
        for update in self._updates[updates_before:]:
            if update not in graph.get_collection(GraphKeys.UPDATE_OPS):
                graph.add_to_collection(GraphKeys.UPDATE_OPS, update)
        return outputs

    def apply(self, inputs, *args, **kwargs):
        return self(inputs, *args, **kwargs)
