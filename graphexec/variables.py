"""tf.Variable and the variable collections/initializers of TF1."""
from __future__ import annotations

from graphexec import dtypes
from graphexec.default_session import default_session_for
from graphexec.framework import Tensor, apply_op, get_default_graph
from graphexec.ir import ShapeAttr
from graphexec.ops.control_ops import group, no_op, tuple as tf_tuple
from graphexec.ops.convert import convert_to_tensor


class GraphKeys:
    GLOBAL_VARIABLES = "variables"
    LOCAL_VARIABLES = "local_variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    MODEL_VARIABLES = "model_variables"
    UPDATE_OPS = "update_ops"
    LOSSES = "losses"
    REGULARIZATION_LOSSES = "regularization_losses"
    SUMMARIES = "summaries"
    GLOBAL_STEP = "global_step"
    METRIC_VARIABLES = "metric_variables"
    TRAIN_OP = "train_op"
    SAVERS = "savers"


class Variable:
    """A named, mutable tensor stored by the session (or server). `var.name` is "<name>:0"."""

    def __init__(self, initial_value=None, trainable=True, collections=None, validate_shape=True,
                 name=None, dtype=None, expected_shape=None, use_resource=None, shape=None, constraint=None):
        if initial_value is None:
            raise ValueError("initial_value must be specified.")
        graph = get_default_graph()
        with graph.control_dependencies(None), graph.name_scope(name or "Variable") as scope:
            self._var_name = scope[:-1]
            if callable(initial_value):
                with graph.name_scope("Initializer"):  # TF1 builds an initializer function's ops here
                    value = initial_value()
            else:
                value = initial_value
            if isinstance(value, Variable):
                value = value.initialized_value()
            with graph.name_scope("initial_value"):
                value = convert_to_tensor(value, dtype=dtype)
            declared = shape if shape is not None else (value._shape if validate_shape else None)
            if hasattr(declared, "dims"):
                declared = declared.dims
            self._attrs = {"var": self._var_name, "dtype": value.dtype, "shape": ShapeAttr(declared)}
            self._initial_value = value
            self._initializer_op = apply_op("Assign", (value,), {**self._attrs, "validate_shape": bool(validate_shape)},
                                            "Assign")
            self._snapshot = apply_op("ReadVariable", (), self._attrs, self._var_name + "/").outputs[0]
        self._graph = graph
        self._trainable = trainable
        self._constraint = constraint  # exposed as in TF1; tf.train optimizers do not apply it (nor do TF1's)
        collections = list(collections) if collections is not None else [GraphKeys.GLOBAL_VARIABLES]
        if trainable and GraphKeys.TRAINABLE_VARIABLES not in collections:
            collections.append(GraphKeys.TRAINABLE_VARIABLES)
        graph.add_to_collections(collections, self)

    # -- identity -------------------------------------------------------------------------------
    name = property(lambda self: self._var_name + ":0")
    op = property(lambda self: self._snapshot.op)
    dtype = property(lambda self: self._attrs["dtype"])
    graph = property(lambda self: self._graph)
    device = property(lambda self: self._snapshot.op.device)
    trainable = property(lambda self: self._trainable)
    initializer = property(lambda self: self._initializer_op)
    initial_value = property(lambda self: self._initial_value)
    shape = property(lambda self: self._snapshot.shape)
    constraint = property(lambda self: self._constraint)

    def get_shape(self):
        return self.shape

    # -- reading --------------------------------------------------------------------------------
    def _as_tensor(self, dtype=None) -> Tensor:
        if dtype is not None and dtypes.as_dtype(dtype) is not self.dtype:
            raise ValueError(f"Incompatible type conversion requested to type '{dtypes.as_dtype(dtype).name}' "
                             f"for variable of type '{self.dtype.name}'")
        if self._graph._control_stack:  # a read ordered after the enclosing control dependencies
            return apply_op("ReadVariable", (), self._attrs, self._var_name + "/read", graph=self._graph).outputs[0]
        return self._snapshot

    def _as_control_op(self):
        return self._snapshot.op

    def _as_graph_element(self):
        return self._snapshot

    def value(self) -> Tensor:
        return self._snapshot

    def read_value(self) -> Tensor:
        return self._as_tensor()

    def initialized_value(self):
        return tf_tuple([self._initial_value], control_inputs=[self._initializer_op])[0]

    # -- writing --------------------------------------------------------------------------------
    def _update(self, op_type, value, name, use_locking=None, read_value=True):
        value = convert_to_tensor(value, dtype=self.dtype)
        return apply_op(op_type, (value,), self._attrs, name or op_type, graph=self._graph).outputs[0]

    def assign(self, value, use_locking=None, name=None, read_value=True):
        return self._update("Assign", value, name)

    def assign_add(self, delta, use_locking=None, name=None, read_value=True):
        return self._update("AssignAdd", delta, name)

    def assign_sub(self, delta, use_locking=None, name=None, read_value=True):
        return self._update("AssignSub", delta, name)

    def eval(self, session=None):
        return self._snapshot.eval(session=session)

    def load(self, value, session=None):
        default_session_for(self._graph, session).load_variable(self._var_name, value, self.dtype)

    def __repr__(self):
        return f"<tf.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}_ref>"  # TF1's ref variables


def assign(ref, value, validate_shape=None, use_locking=None, name=None):
    return ref.assign(value, name=name)


def assign_add(ref, value, use_locking=None, name=None):
    return ref.assign_add(value, name=name)


def assign_sub(ref, value, use_locking=None, name=None):
    return ref.assign_sub(value, name=name)


def global_variables(scope=None):
    return get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES, scope)


def local_variables(scope=None):
    return get_default_graph().get_collection(GraphKeys.LOCAL_VARIABLES, scope)


def trainable_variables(scope=None):
    return get_default_graph().get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)


def variables_initializer(var_list, name="init"):
    if not var_list:
        return no_op(name=name)
    return group(*[v.initializer for v in var_list], name=name)


def global_variables_initializer():
    return variables_initializer(global_variables(), name="init")


def local_variables_initializer():
    return variables_initializer(local_variables(), name="init_1")


initialize_all_variables = global_variables_initializer
