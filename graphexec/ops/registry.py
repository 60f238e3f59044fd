"""The op registry: one `OpDef` per op, naming its shape rule, dtype rule, kernel and gradient.

Rules are pure functions over abstract values (`Aval`: dtype, shape, and the value when it is a
small constant known at build time). Kernels take an execution context first (its `xp` is numpy or
CuPy, so one kernel serves both backends), then input arrays, then attrs as keywords.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from graphexec.dtypes import DType


class ShapeError(Exception):
    """Raised by a shape or dtype rule; the graph builder adds the op, its inputs and the user's line."""


class NotDifferentiable:
    """Marker for ops that explicitly have no gradient (e.g. Shape, ArgMax, Equal)."""

    def __repr__(self) -> str:
        return "NOT_DIFFERENTIABLE"


NOT_DIFFERENTIABLE = NotDifferentiable()


@dataclass(frozen=True, slots=True)
class Aval:
    """Abstract value: what rules see of an input."""

    dtype: DType
    shape: tuple | None
    value: np.ndarray | None = None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)


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


REGISTRY: dict[str, OpDef] = {}


def op(name: str, *, shape, dtype, kernel, grad=None, elementwise=False, stateful=False, ufunc=None,
       commutative=False, const_value=None) -> OpDef:
    """Declare an op; a second declaration of the same name is a programming error."""
    if name in REGISTRY:
        raise ValueError(f"op {name!r} is already registered: {REGISTRY[name]}")
    definition = OpDef(name, shape, dtype, kernel, grad, elementwise, stateful, ufunc, commutative, const_value)
    REGISTRY[name] = definition
    return definition


def set_gradient(name: str, grad) -> None:
    """Attach a gradient to an op declared elsewhere (used where the rule needs later-defined ops)."""
    import dataclasses

    REGISTRY[name] = dataclasses.replace(REGISTRY[name], grad=grad)


def get(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}") from None
