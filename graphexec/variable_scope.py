"""tf.variable_scope and tf.get_variable, following TF1's rules for names, reuse and defaults.

Each graph keeps a variable store (full name -> Variable) and a scope store (the current VariableScope
and how often each scope name was opened, which makes `default_name` unique) in collections, as TF does.
A variable scope also opens a name scope, so ops get the uniquified scope name ("scope_1/add") while
get_variable names variables by the variable scope alone ("scope/w").
"""
from __future__ import annotations

import contextlib
import copy
import enum

from graphexec import dtypes
from graphexec.framework import Tensor, get_default_graph
from graphexec.initializers import GlorotUniform, Zeros
from graphexec.ops.convert import numpy_value
from graphexec.variables import GraphKeys, Variable

__all__ = ["AUTO_REUSE", "VariableScope", "variable_scope", "get_variable_scope", "get_variable",
           "get_local_variable", "no_regularizer"]

_VARSTORE_KEY = ("__variable_store",)
_VARSCOPESTORE_KEY = ("__varscope",)


class _ReuseMode(enum.Enum):
    AUTO_REUSE = 1


AUTO_REUSE = _ReuseMode.AUTO_REUSE  # create variables that do not exist, return those that do


def no_regularizer(_):
    """Use it as a variable's regularizer to opt out of its scope's regularizer."""
    return None


class VariableScope:
    """A variable scope's name and the defaults (reuse, initializer, regularizer, dtype) its get_variable uses."""

    def __init__(self, reuse, name="", initializer=None, regularizer=None, caching_device=None, partitioner=None,
                 custom_getter=None, name_scope="", dtype=dtypes.float32, use_resource=None, constraint=None):
        self._name, self._reuse = name, reuse
        self._initializer, self._regularizer = initializer, regularizer
        self._caching_device, self._partitioner, self._custom_getter = caching_device, partitioner, custom_getter
        self._name_scope, self._dtype = name_scope, dtypes.as_dtype(dtype)
        self._use_resource, self._constraint = use_resource, constraint

    name = property(lambda self: self._name)
    original_name_scope = property(lambda self: self._name_scope)
    reuse = property(lambda self: self._reuse)
    initializer = property(lambda self: self._initializer)
    regularizer = property(lambda self: self._regularizer)
    dtype = property(lambda self: self._dtype)
    caching_device = property(lambda self: self._caching_device)
    partitioner = property(lambda self: self._partitioner)
    custom_getter = property(lambda self: self._custom_getter)
    use_resource = property(lambda self: self._use_resource)
    constraint = property(lambda self: self._constraint)

    def reuse_variables(self):
        self._reuse = True

    def set_initializer(self, initializer):
        self._initializer = initializer

    def set_regularizer(self, regularizer):
        self._regularizer = regularizer

    def set_dtype(self, dtype):
        self._dtype = dtypes.as_dtype(dtype)

    def set_caching_device(self, caching_device):
        self._caching_device = caching_device

    def set_partitioner(self, partitioner):
        self._partitioner = partitioner

    def set_custom_getter(self, custom_getter):
        self._custom_getter = custom_getter

    def set_use_resource(self, use_resource):
        self._use_resource = use_resource

    def get_collection(self, name):
        return get_default_graph().get_collection(name, self._name + "/" if self._name else None)

    def global_variables(self):
        return self.get_collection(GraphKeys.GLOBAL_VARIABLES)

    def trainable_variables(self):
        return self.get_collection(GraphKeys.TRAINABLE_VARIABLES)

    def local_variables(self):
        return self.get_collection(GraphKeys.LOCAL_VARIABLES)

    def get_variable(self, var_store, name, shape=None, dtype=None, initializer=None, regularizer=None,
                     reuse=None, trainable=None, collections=None, caching_device=None, partitioner=None,
                     validate_shape=True, use_resource=None, custom_getter=None, constraint=None, **_):
        regularizer = self._regularizer if regularizer is None else regularizer
        custom_getter = self._custom_getter if custom_getter is None else custom_getter
        partitioner = self._partitioner if partitioner is None else partitioner
        if partitioner is not None:
            raise NotImplementedError("partitioned variables are not supported")
        reuse = self._reuse if reuse is None or reuse is False else reuse
        full_name = f"{self._name}/{name}" if self._name else name
        graph = get_default_graph()
        # Variable names depend on the variable scope only, so the name scope is reset while creating it.
        with graph.name_scope(None):
            if dtype is not None and initializer is not None and not callable(initializer):
                init_dtype = _value_dtype(initializer)
                if init_dtype is not dtypes.as_dtype(dtype):
                    raise ValueError(f"Initializer type '<dtype: '{init_dtype.name}'>' and explicit dtype "
                                     f"'<dtype: '{dtypes.as_dtype(dtype).name}'>' don't match.")
            return var_store.get_variable(
                full_name, shape=shape, dtype=self._dtype if dtype is None else dtype,
                initializer=self._initializer if initializer is None else initializer, regularizer=regularizer,
                reuse=reuse, trainable=trainable, collections=collections, validate_shape=validate_shape,
                custom_getter=custom_getter, constraint=self._constraint if constraint is None else constraint)


def _value_dtype(value) -> dtypes.DType:
    if isinstance(value, Tensor) or hasattr(value, "_as_tensor"):
        return value.dtype
    return dtypes.from_numpy(numpy_value(value).dtype)


def _shape_dims(shape):
    if shape is None:
        return None
    dims = shape.dims if hasattr(shape, "dims") else (list(shape) if not isinstance(shape, int) else [shape])
    return None if dims is None else [None if d is None else int(d) for d in dims]


def _format_dims(dims) -> str:
    text = ", ".join("?" if d is None else str(d) for d in dims)
    return f"({text},)" if len(dims) == 1 else f"({text})"


class _VariableStore:
    """The variables get_variable created, by full name."""

    def __init__(self):
        self.variables: dict[str, Variable] = {}

    def get_variable(self, name, shape=None, dtype=dtypes.float32, initializer=None, regularizer=None, reuse=None,
                     trainable=None, collections=None, validate_shape=True, custom_getter=None, constraint=None):
        if custom_getter is not None:
            return custom_getter(self._true_getter, name, shape=shape, dtype=dtype, initializer=initializer,
                                 regularizer=regularizer, reuse=reuse, trainable=trainable, collections=collections,
                                 validate_shape=validate_shape, constraint=constraint)
        return self._true_getter(name, shape, dtype, initializer, regularizer, reuse, trainable, collections,
                                 validate_shape, constraint)

    def _true_getter(self, name, shape=None, dtype=dtypes.float32, initializer=None, regularizer=None, reuse=None,
                     trainable=None, collections=None, validate_shape=True, constraint=None, **_):
        from_value = initializer is not None and not callable(initializer)
        if shape is not None and from_value:
            raise ValueError("If initializer is a constant, do not specify shape.")
        dtype = dtypes.as_dtype(dtype)
        dims = _shape_dims(shape)
        found = self.variables.get(name)
        if found is not None:
            if reuse is False:
                raise ValueError(f"Variable {name} already exists, disallowed. Did you mean to set reuse=True or "
                                 f"reuse=tf.AUTO_REUSE in VarScope? Originally defined at:\n\n"
                                 f"{_format_source(found.op.source)}")
            found_dims = found.shape.dims
            if dims is not None and found_dims is not None and (
                    len(dims) != len(found_dims)
                    or any(a is not None and b is not None and a != b for a, b in zip(dims, found_dims))):
                raise ValueError(f"Trying to share variable {name}, but specified shape {_format_dims(dims)} and "
                                 f"found shape {found.shape}.")
            if dtype is not found.dtype:
                raise ValueError(f"Trying to share variable {name}, but specified dtype {dtype.name} and found "
                                 f"dtype {found.dtype.name}_ref.")  # TF1's variables have reference dtypes
            return found
        if reuse is True:
            raise ValueError(f"Variable {name} does not exist, or was not created with tf.get_variable(). Did you "
                             f"mean to set reuse=tf.AUTO_REUSE in VarScope?")
        if initializer is None:
            if dims is None:
                raise ValueError(f"Variable {name} did not get an initializer, so its `shape` argument must be "
                                 f"specified.")
            initializer = _default_initializer(name, dtype)
        if isinstance(initializer, type):
            initializer = initializer()
        if from_value:
            initial_value, variable_dtype = initializer, None
        elif dims is not None and None not in dims:
            def initial_value():
                return initializer(dims, dtype=dtype)
            variable_dtype = dtype
        elif _takes_no_arguments(initializer):
            initial_value, variable_dtype = initializer, None
        else:
            raise ValueError("The initializer passed is not valid. It should be a callable with no arguments and "
                             "the shape should not be provided or an instance of `tf.keras.initializers.*' and "
                             "`shape` should be fully defined.")
        variable = Variable(initial_value=initial_value, name=name, trainable=True if trainable is None else trainable,
                            collections=collections, validate_shape=validate_shape, dtype=variable_dtype,
                            shape=dims if validate_shape else None, constraint=constraint)
        self.variables[name] = variable
        if regularizer is not None:
            with get_default_graph().name_scope(name + "/Regularizer/"):
                loss = regularizer(variable)
            if loss is not None:
                get_default_graph().add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)
        return variable


def _takes_no_arguments(fn) -> bool:
    code = getattr(fn, "__code__", None)
    return code is not None and code.co_argcount == 0


def _format_source(source: str) -> str:
    """The creating line as Python formats a traceback entry (TF1 shows the creation traceback)."""
    path, _, line = source.rpartition(":")
    return f'  File "{path}", line {line}\n' if path else ""


def _default_initializer(name, dtype):
    if dtype.is_floating:
        return GlorotUniform()
    if dtype.is_integer or dtype.is_bool:
        return Zeros()
    raise ValueError(f"An initializer for variable {name} of {dtype.name} is required")


class _VariableScopeStore:
    def __init__(self):
        self.current_scope = VariableScope(False)
        self.scope_counts: dict[str, int] = {}

    def open(self, scope_name):
        self.scope_counts[scope_name] = self.scope_counts.get(scope_name, 0) + 1

    def close_subscopes(self, scope_name):
        prefix = scope_name + "/"
        for key in self.scope_counts:
            if key.startswith(prefix):
                self.scope_counts[key] = 0


def _graph_singleton(key, make):
    graph = get_default_graph()
    found = graph.get_collection(key)
    if found:
        return found[0]
    made = make()
    graph.add_to_collection(key, made)
    return made


def _variable_store() -> _VariableStore:
    return _graph_singleton(_VARSTORE_KEY, _VariableStore)


def _scope_store() -> _VariableScopeStore:
    return _graph_singleton(_VARSCOPESTORE_KEY, _VariableScopeStore)


def get_variable_scope() -> VariableScope:
    return _scope_store().current_scope


def get_variable(name, shape=None, dtype=None, initializer=None, regularizer=None, trainable=None, collections=None,
                 caching_device=None, partitioner=None, validate_shape=True, use_resource=None, custom_getter=None,
                 constraint=None, **kwargs):
    """The variable `scope/name`, created or (in a reusing scope) shared, as TF1's tf.get_variable."""
    return get_variable_scope().get_variable(
        _variable_store(), name, shape=shape, dtype=dtype, initializer=initializer, regularizer=regularizer,
        trainable=trainable, collections=collections, partitioner=partitioner, validate_shape=validate_shape,
        custom_getter=custom_getter, constraint=constraint)


def get_local_variable(name, shape=None, dtype=None, initializer=None, regularizer=None, trainable=False,
                       collections=None, **kwargs):
    collections = list(collections or []) + [GraphKeys.LOCAL_VARIABLES]
    return get_variable(name, shape, dtype, initializer, regularizer, trainable=trainable, collections=collections,
                        **kwargs)


def _unique_default_name(store: _VariableScopeStore, prefix: str) -> str:
    current = store.current_scope.name
    name = f"{current}/{prefix}" if current else prefix
    if not store.scope_counts.get(name):
        return prefix
    index = 1
    while store.scope_counts.get(f"{name}_{index}"):
        index += 1
    return f"{prefix}_{index}"


class variable_scope:  # noqa: N801 - TF's name
    """Open a variable scope (and its name scope): `name_or_scope` a string or a VariableScope to re-enter, or
    None with `default_name` made unique among its siblings."""

    def __init__(self, name_or_scope, default_name=None, values=None, initializer=None, regularizer=None,
                 caching_device=None, partitioner=None, custom_getter=None, reuse=None, dtype=None,
                 use_resource=None, constraint=None, auxiliary_name_scope=True):
        if default_name is None and name_or_scope is None:
            raise TypeError("If default_name is None then name_or_scope is required")
        if name_or_scope is not None and not isinstance(name_or_scope, (VariableScope, str)):
            raise TypeError("VariableScope: name_or_scope must be a string or VariableScope.")
        reuse = None if reuse is False else reuse
        if not (reuse is True or reuse is None or reuse is AUTO_REUSE):
            raise ValueError("The reuse parameter must be True or False or None.")
        if not isinstance(auxiliary_name_scope, bool):
            raise TypeError(f"The auxiliary_name_scope must be `True` or `False`, while get {auxiliary_name_scope}")
        self._name_or_scope, self._default_name, self._reuse = name_or_scope, default_name, reuse
        self._settings = {"initializer": initializer, "regularizer": regularizer, "caching_device": caching_device,
                          "partitioner": partitioner, "custom_getter": custom_getter, "dtype": dtype,
                          "use_resource": use_resource}
        self._constraint = constraint
        self._auxiliary_name_scope = auxiliary_name_scope
        self._graph = next((v.graph for v in values or () if isinstance(v, Tensor)), None)
        self._exits = None

    def __enter__(self) -> VariableScope:
        self._exits = contextlib.ExitStack()
        try:
            if self._graph is not None:
                self._exits.enter_context(self._graph.as_default())
            return self._enter()
        except BaseException:
            self._exits.close()
            raise

    def _enter(self) -> VariableScope:
        graph = get_default_graph()
        store = _scope_store()
        # Without an auxiliary name scope, ops stay in the current name scope (re-entered exactly).
        current = None
        if not self._auxiliary_name_scope:
            current = graph.name_scope(graph.get_name_scope() + "/" if graph.get_name_scope() else None)
        old = store.current_scope
        if self._name_or_scope is None:
            if self._reuse:
                raise ValueError("reuse=True cannot be used without a name_or_scope")
            name_scope = self._exits.enter_context(current or graph.name_scope(self._default_name))
            scope_name = _unique_default_name(store, self._default_name)
            return self._open_named(store, old, scope_name, name_scope)
        if isinstance(self._name_or_scope, str):
            if self._name_or_scope or current is not None:
                name_scope = self._exits.enter_context(current or graph.name_scope(self._name_or_scope))
                return self._open_named(store, old, self._name_or_scope, name_scope)
            return self._open_named(store, old, self._name_or_scope, self._name_or_scope)
        scope = self._name_or_scope
        last = scope.name.split("/")[-1]
        if last or current is not None:
            self._exits.enter_context(current or graph.name_scope(last))
        return self._reenter(store, old, scope)

    def _apply(self, scope: VariableScope, custom_getter_below):
        settings = self._settings
        for key in ("initializer", "regularizer", "caching_device", "partitioner", "dtype", "use_resource"):
            if settings[key] is not None:
                getattr(scope, "set_" + key)(settings[key])
        if settings["custom_getter"] is not None:
            scope.set_custom_getter(_chain_getters(settings["custom_getter"], custom_getter_below))

    def _open_named(self, store, old, relative, name_scope) -> VariableScope:
        full = f"{old.name}/{relative}" if old.name else relative
        reuse = self._reuse or old.reuse  # reuse is inherited by sub-scopes
        scope = VariableScope(reuse, name=full, initializer=old.initializer, regularizer=old.regularizer,
                              caching_device=old.caching_device, partitioner=old.partitioner, dtype=old.dtype,
                              use_resource=old.use_resource, custom_getter=old.custom_getter, name_scope=name_scope,
                              constraint=self._constraint)
        self._apply(scope, old.custom_getter)
        store.open(full)
        self._exits.callback(self._leave, store, old, scope, lambda: store.close_subscopes(full))
        store.current_scope = scope
        return scope

    def _reenter(self, store, old, scope) -> VariableScope:
        entered = VariableScope(scope.reuse if not self._reuse else self._reuse, name=scope.name,
                                initializer=scope.initializer, regularizer=scope.regularizer,
                                caching_device=scope.caching_device, partitioner=scope.partitioner, dtype=scope.dtype,
                                custom_getter=scope.custom_getter, name_scope=scope.original_name_scope,
                                use_resource=scope.use_resource, constraint=self._constraint)
        self._apply(entered, scope.custom_getter)
        store.open(scope.name)
        counts = copy.copy(store.scope_counts)

        def restore():
            store.scope_counts = counts

        self._exits.callback(self._leave, store, old, entered, restore)
        store.current_scope = entered
        return entered

    @staticmethod
    def _leave(store, old, entered, close):
        if store.current_scope is not entered:
            raise RuntimeError("Improper nesting of variable_scope.")
        close()
        store.current_scope = old

    def __exit__(self, *exc):
        exits, self._exits = self._exits, None
        return exits.__exit__(*exc)


def _chain_getters(getter, below):
    """A scope's custom getter calls the enclosing scope's getter as its `getter`."""
    if below is None:
        return getter

    def chained(true_getter, *args, **kwargs):
        return getter(lambda *a, **k: below(true_getter, *a, **k), *args, **kwargs)

    return chained
