"""The op registry: one `OpDef` per op, its signature (inputs, typed attrs) beside its shape rule,
dtype rule, kernel and gradient.

Rules are pure functions over abstract values (`Aval`: dtype, shape, and the value when it is a
small constant known at build time). Kernels take an execution context first (its `xp` is numpy or
CuPy, so one kernel serves both backends), then input arrays, then attrs as keywords.

`infer` and `evaluate` are the only places that run rules and build-time kernels: graph building,
wire decoding and constant folding all call them, so a node is typed the same way everywhere.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from graphexec.dtypes import DType
from graphexec.ir import ShapeAttr, num_elements
from graphexec.runtime.context import build_time_context

BUILD_TIME_VALUE_LIMIT = 1024  # elements: build-time values beyond this are not kept (they only serve shape rules)


class ShapeError(Exception):
    """Raised by a shape or dtype rule; the graph builder adds the op, its inputs and the user's line."""


class AttrError(ShapeError):
    """An attr is missing, unknown or of the wrong type (always names the op, the attr and the type)."""


class NotDifferentiable:
    """Marker for ops that explicitly have no gradient (e.g. Shape, ArgMax, Equal)."""

    def __repr__(self) -> str:
        return "NOT_DIFFERENTIABLE"


NOT_DIFFERENTIABLE = NotDifferentiable()
REQUIRED = object()  # AttrDef.default of an attr every node must set


@dataclass(frozen=True, slots=True)
class Aval:
    """Abstract value: what rules see of an input."""

    dtype: DType
    shape: tuple | None
    value: np.ndarray | None = None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)


# -- attribute types --------------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_float(v) -> bool:
    return isinstance(v, (float, np.floating)) or _is_int(v)


_SCALAR_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": _is_int,
    "float": _is_float,
    "bool": lambda v: isinstance(v, (bool, np.bool_)),
    "string": lambda v: isinstance(v, str),
    "type": lambda v: isinstance(v, DType),
    "shape": lambda v: isinstance(v, ShapeAttr),
    "tensor": lambda v: isinstance(v, np.ndarray),
    "any": lambda v: True,  # compiler-internal structured attrs (Fused's body)
}
ATTR_TYPES = frozenset(_SCALAR_CHECKS) | {f"list({t})" for t in _SCALAR_CHECKS if t != "any"}


def _type_check(type_name: str) -> Callable[[Any], bool]:
    if type_name.startswith("list("):
        element = _SCALAR_CHECKS[type_name[5:-1]]
        return lambda v: isinstance(v, (tuple, list)) and all(element(x) for x in v)
    return _SCALAR_CHECKS[type_name]


@dataclass(frozen=True, slots=True)
class AttrDef:
    """One attribute of an op: its type (TF's attr type names), default, and whether None is allowed."""

    type: str
    default: Any = REQUIRED
    nullable: bool = False  # None is a value (e.g. axis=None: every axis)
    check: Callable[[Any], bool] = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.type not in ATTR_TYPES:
            raise ValueError(f"unknown attr type {self.type!r}; expected one of {sorted(ATTR_TYPES)}")
        object.__setattr__(self, "check", _type_check(self.type))

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        return self.type + (" or None" if self.nullable else "")


def attr(type_name: str, default=REQUIRED, nullable: bool = False) -> AttrDef:
    """`attr("list(int)", None, nullable=True)`: shorthand used by op declarations."""
    return AttrDef(type_name, default, nullable or default is None)


@dataclass(frozen=True, slots=True)
class InputDef:
    name: str
    variadic: bool = False  # takes any number of tensors (TF's `N * T`)


def _input_defs(spec) -> tuple[InputDef, ...]:
    return tuple(InputDef(s[1:], True) if s.startswith("*") else InputDef(s) for s in spec)


@dataclass(frozen=True)
class OpDef:
    name: str
    shape: Callable[[list[Aval], dict], Any]  # -> shape, or a list of shapes for multi-output ops
    dtype: Callable[[list[Aval], dict], Any]  # -> DType, or a list of DTypes
    kernel: Callable[..., Any]
    grad: Callable | NotDifferentiable | None = None  # None: not declared yet
    elementwise: bool = False  # output[i] depends only on inputs[i] (broadcast): fusable
    stateful: bool = False  # reads/writes session state or randomness: never folded, CSE'd or pruned as dead
    ufunc: str | None = None  # numpy/CuPy ufunc name: lets fused steps compute in place with out=
    commutative: bool = False
    const_value: Callable[[list[Aval], dict], Any] | None = None  # build-time value from avals (Shape)
    inputs: tuple[InputDef, ...] = ()
    attrs: Mapping[str, AttrDef] = dataclasses.field(default_factory=dict)
    compiler_only: bool = False  # created by the compiler (Feed, Fused); never accepted from a client
    is_constant: bool = False  # its value is its `value` attr (Const)
    is_feed: bool = False  # its value is supplied by the run (Feed)
    is_fused: bool = False  # runs a sub-program of elementwise ops (Fused)
    is_noop: bool = False  # computes nothing; exists for its control edges (NoOp)
    variadic: bool = False  # one input takes any number of tensors (derived from `inputs`)
    is_placeholder: bool = False  # its value must be fed: the compiler reports it when unfed (Placeholder)

    @property
    def runs_as_step(self) -> bool:
        """Whether a plan step executes it (constants and feeds fill slots; no-ops only order)."""
        return not (self.is_constant or self.is_feed or self.is_noop)


REGISTRY: dict[str, OpDef] = {}


def op(name: str, *, shape, dtype, kernel, inputs, grad=None, elementwise=False, stateful=False, ufunc=None,
       commutative=False, const_value=None, attrs=None, compiler_only=False, is_constant=False,
       is_feed=False, is_fused=False, is_noop=False, is_placeholder=False) -> OpDef:
    """Declare an op; a second declaration of the same name is a programming error.

    `inputs` names the inputs in order ("*values" for a variadic list); `attrs` maps each attr name to
    an `AttrDef` (see `attr`).
    """
    if name in REGISTRY:
        raise ValueError(f"op {name!r} is already registered: {REGISTRY[name]}")
    input_defs = _input_defs(inputs)
    definition = OpDef(name, shape, dtype, kernel, grad, elementwise, stateful, ufunc, commutative, const_value,
                       input_defs, dict(attrs or {}), compiler_only, is_constant, is_feed, is_fused, is_noop,
                       is_placeholder=is_placeholder, variadic=any(i.variadic for i in input_defs))
    REGISTRY[name] = definition
    return definition


def get(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}") from None


# -- the one place rules and build-time kernels run -------------------------------------------------
def check_attrs(definition: OpDef, attrs: Mapping) -> dict:
    """`attrs` with defaults filled in; AttrError naming op, attr and expected type on any mismatch."""
    declared = definition.attrs
    if not declared and not attrs:
        return {}
    for key in attrs:
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise AttrError(f"{definition.name} has no attr '{key}' (its attrs: {known})")
    full = {}
    for key, spec in declared.items():
        if key in attrs:
            value = attrs[key]
            if not (value is None and spec.nullable) and not spec.check(value):
                raise AttrError(f"attr '{key}' of {definition.name} must be {spec.describe()}, got "
                                f"{type(value).__name__} {_short(value)}")
            full[key] = value
        elif spec.required:
            raise AttrError(f"{definition.name} requires attr '{key}' ({spec.describe()})")
        else:
            full[key] = spec.default
    return full


def check_arity(definition: OpDef, count: int) -> None:
    specs = definition.inputs
    if count == len(specs) and not definition.variadic:  # the common case, first
        return
    fixed = sum(not s.variadic for s in specs)
    if count < fixed or (count != fixed and not definition.variadic):
        names = ", ".join(("*" if s.variadic else "") + s.name for s in specs) or "none"
        more = " or more" if any(s.variadic for s in specs) else ""
        raise ShapeError(f"{definition.name} takes {fixed}{more} inputs ({names}), got {count}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def infer(definition: OpDef, avals: list[Aval], attrs: Mapping) -> tuple[dict, list[Aval]]:
    """(attrs with defaults filled in, output avals) of one node: checks arity and attrs, runs the shape
    and dtype rules, and attaches build-time values to small pure results (so value-dependent shape rules
    downstream can use them)."""
    check_arity(definition, len(avals))
    full = check_attrs(definition, attrs)
    shapes = definition.shape(avals, full)
    types = definition.dtype(avals, full)
    if isinstance(types, list):
        out = [Aval(t, s) for t, s in zip(types, shapes)]
    else:
        out = [Aval(types, shapes)]
    value = None
    if definition.const_value is not None:
        value = definition.const_value(avals, full)
    elif avals and not definition.stateful and all(a.value is not None for a in avals):
        sizes = [num_elements(a.shape) for a in out]
        if all(s is not None and s <= BUILD_TIME_VALUE_LIMIT for s in sizes):
            value = evaluate(definition, [a.value for a in avals], full)
    if value is None:
        return full, out
    values = value if isinstance(value, (list, tuple)) else [value]
    return full, [Aval(a.dtype, a.shape, np.asarray(v, dtype=a.dtype.np)) for a, v in zip(out, values)]


def evaluate(definition: OpDef, values: list, attrs: Mapping):
    """The op's kernel on host values at build or compile time; None when it fails (the run then
    reports the error against the node) or when the op must not run early (stateful)."""
    if definition.stateful or not definition.runs_as_step or definition.is_fused:
        return None
    try:
        with np.errstate(all="ignore"):  # as at run time: nan/inf results are values, not warnings
            return definition.kernel(build_time_context(), *values, **kernel_attrs(definition, attrs))
    except (ValueError, TypeError, IndexError, ArithmeticError, FloatingPointError, KeyError):
        return None


def kernel_attrs(definition: OpDef, attrs: Mapping) -> dict:
    """Keyword arguments of the kernel: the declared attrs, defaults filled in."""
    return check_attrs(definition, attrs)



# -- export -----------------------------------------------------------------------------------------
def _json_value(value):
    if value is REQUIRED:
        return None
    if isinstance(value, DType):
        return value.name
    if isinstance(value, ShapeAttr):
        return None if value.unknown_rank else list(value)
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


def schema() -> list[dict]:
    """Every op's signature as plain data (for `python -m graphexec.ops --json` and other clients)."""
    out = []
    for name in sorted(REGISTRY):
        d = REGISTRY[name]
        out.append({
            "name": name,
            "inputs": [{"name": i.name, "variadic": i.variadic} for i in d.inputs],
            "attrs": [{"name": k, "type": a.type, "required": a.required, "nullable": a.nullable,
                       **({} if a.required else {"default": _json_value(a.default)})}
                      for k, a in sorted(d.attrs.items())],
            "stateful": d.stateful, "elementwise": d.elementwise, "commutative": d.commutative,
            "compiler_only": d.compiler_only,
            "differentiable": d.grad is not None and not isinstance(d.grad, NotDifferentiable),
        })
    return out
