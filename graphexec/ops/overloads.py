"""Python operators on Tensor and Variable (`+ - * / // % ** @`, unary minus, comparisons, indexing).
`==` stays identity-based, as in TF1 graph mode, so tensors can key feed dicts."""
from __future__ import annotations

from graphexec.framework import Tensor
from graphexec.ops import math_ops, slicing_ops
from graphexec.variables import Variable


def _binary(fn, name):
    return lambda self, other: fn(self, other, name=name), lambda self, other: fn(other, self, name=name)


_OPERATORS = {
    "add": math_ops.add, "sub": math_ops.subtract, "mul": math_ops.multiply, "truediv": math_ops.truediv,
    "floordiv": math_ops.floordiv, "mod": math_ops.mod, "pow": math_ops.pow, "matmul": math_ops.matmul,
    "and": math_ops.logical_and, "or": math_ops.logical_or,
}


def _attach(cls):
    for name, fn in _OPERATORS.items():
        forward, reflected = _binary(fn, name)  # TF1 names operator ops in lower case: "add", "mul", "and"
        setattr(cls, f"__{name}__", forward)
        setattr(cls, f"__r{name}__", reflected)
    cls.__lt__ = lambda self, other: math_ops.less(self, other)
    cls.__le__ = lambda self, other: math_ops.less_equal(self, other)
    cls.__gt__ = lambda self, other: math_ops.greater(self, other)
    cls.__ge__ = lambda self, other: math_ops.greater_equal(self, other)
    cls.__neg__ = lambda self: math_ops.negative(self)
    cls.__abs__ = lambda self: math_ops.abs(self)
    cls.__invert__ = lambda self: math_ops.logical_not(self)
    cls.__getitem__ = lambda self, key: slicing_ops.getitem(self, key)


_attach(Tensor)
_attach(Variable)
Variable.__array_priority__ = 100
