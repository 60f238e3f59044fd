"""Math ops: elementwise arithmetic, comparisons, logic, casts and matmul; the math Python API
(tf.add, tf.matmul, tf.reduce_sum...), reductions included (declared in graphexec.ops.reduction_ops)."""
from __future__ import annotations

import math

import numpy as np

from graphexec import dtypes
from graphexec.dtypes import FLOATING, NUMERIC
from graphexec.framework import Tensor, apply_op
from graphexec.ir import ShapeAttr
from graphexec.ops import interruptible, rules
from graphexec.ops.convert import constant, convert_pair, convert_to_tensor
from graphexec.ops.emit import dynamic_shape, emit
from graphexec.ops.reduction_ops import summed
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["abs", "add", "add_n", "cast", "ceil", "clip_by_value", "cos", "divide", "equal", "exp", "floor", "floordiv",
           "floormod",
           "greater", "greater_equal", "less", "less_equal", "log", "log1p", "logical_and", "logical_not",
           "logical_or", "matmul", "maximum", "minimum", "mod", "multiply", "negative", "not_equal", "pow", "round",
           "rsqrt", "sigmoid", "sign", "sin", "sqrt", "square", "squared_difference", "subtract", "tanh", "to_float",
           "truediv", "where", "where_v2"]

SIGNED = tuple(d for d in NUMERIC if d.np.kind != "u")


def ufunc_kernel(name):
    """Kernel calling xp.<name>: the same code runs on numpy and CuPy."""
    return lambda ctx, *xs: getattr(ctx.xp, name)(*xs)


def binary(name, ufunc, allowed=NUMERIC, out=None, commutative=False, grad=None):
    dtype_rule = rules.returns(out, inputs_alike=True, allowed=allowed) if out else rules.same_dtype(*allowed)
    return op(name, shape=rules.broadcast, dtype=dtype_rule, kernel=ufunc_kernel(ufunc), elementwise=True,
              ufunc=ufunc, commutative=commutative, grad=NOT_DIFFERENTIABLE if out else grad, inputs=("x", "y"))


def unary(name, kernel, allowed=NUMERIC, ufunc=None, grad=None):
    return op(name, shape=rules.unchanged, dtype=rules.same_dtype(*allowed), kernel=kernel, elementwise=True,
              ufunc=ufunc, grad=grad, inputs=("x",))


# -- gradient rules: grad(op, dy) -> one gradient (or None) per input; see graphexec.gradients ---------
# Ops of other families are built by name (emit), so this module imports no other op family.
def _unbroadcast(op, dx, dy):
    """Gradients of a broadcasting binary op, each summed back to its own input's shape."""
    x, y = op.inputs[-2:]
    return [sum_to_shape(dx, x), sum_to_shape(dy, y)]


def _add_grad(op, dz):
    return _unbroadcast(op, dz, dz)


def _sub_grad(op, dz):
    return _unbroadcast(op, dz, negative(dz))


def _mul_grad(op, dz):
    x, y = op.inputs
    return _unbroadcast(op, multiply(dz, y), multiply(x, dz))


def _div_grad(op, dz):
    x, y = op.inputs
    return _unbroadcast(op, truediv(dz, y), multiply(dz, truediv(truediv(negative(x), y), y)))


def _floor_mod_grad(op, dz):
    x, y = op.inputs
    return _unbroadcast(op, dz, multiply(dz, negative(floordiv(x, y))))


def _pow_grad(op, dz):
    """z = x**y: dx = y x**(y-1) dz; dy = z log(x) dz where x > 0, else 0 (as TF)."""
    x, y = op.inputs
    z = op.outputs[0]
    dx = multiply(dz, multiply(y, pow(x, subtract(y, 1))))
    positive = greater(x, 0)
    log_x = where(positive, log(where(positive, x, emit("OnesLike", x))), emit("ZerosLike", x))
    return _unbroadcast(op, dx, multiply(dz, multiply(z, log_x)))


def _selecting_grad(compare):
    """maximum/minimum: the gradient goes to x where x won (ties included), else to y."""
    def grad(op, dz):
        x, y = op.inputs
        x_wins, zeros = compare(x, y), emit("ZerosLike", dz)
        return _unbroadcast(op, where(x_wins, dz, zeros), where(x_wins, zeros, dz))

    return grad


def _select_grad(op, dz):
    condition, zeros = op.inputs[0], emit("ZerosLike", dz)
    return [None, *_unbroadcast(op, where(condition, dz, zeros), where(condition, zeros, dz))]


def _output_grad(fn):
    """Rule for a unary op whose derivative is easiest written with its output z."""
    return lambda op, dz: [fn(op.inputs[0], op.outputs[0], dz)]


def _sign_grad(op, dz):
    return [emit("ZerosLike", op.inputs[0])]


def _squared_difference_grad(op, dz):
    x, y = op.inputs
    dx = multiply(multiply(dz, 2), subtract(x, y))
    return _unbroadcast(op, dx, negative(dx))


def _cast_grad(op, dz):
    source = op.inputs[0].dtype
    return [cast(dz, source) if source.is_floating and dz.dtype.is_floating else None]


def _matmul_grad(op, dz):
    a, b = op.inputs
    attrs = op.attrs
    ta, tb = attrs["transpose_a"], attrs["transpose_b"]
    if not ta and not tb:
        da, db = matmul(dz, b, transpose_b=True), matmul(a, dz, transpose_a=True)
    elif not ta:
        da, db = matmul(dz, b), matmul(dz, a, transpose_a=True)
    elif not tb:
        da, db = matmul(b, dz, transpose_b=True), matmul(a, dz)
    else:
        da, db = matmul(b, dz, transpose_a=True, transpose_b=True), matmul(dz, a, transpose_a=True, transpose_b=True)
    return [sum_to_shape(da, a), sum_to_shape(db, b)]



# -- elementwise binary -------------------------------------------------------------------------
Add = binary("Add", "add", commutative=True, grad=_add_grad)
Sub = binary("Sub", "subtract", grad=_sub_grad)
Mul = binary("Mul", "multiply", commutative=True, grad=_mul_grad)
RealDiv = binary("RealDiv", "true_divide", allowed=FLOATING, grad=_div_grad)
FloorDiv = binary("FloorDiv", "floor_divide", grad=lambda op, dz: [None, None])  # piecewise constant
FloorMod = binary("FloorMod", "mod", grad=_floor_mod_grad)
Pow = binary("Pow", "power", grad=_pow_grad)
Maximum = binary("Maximum", "maximum", commutative=True, grad=_selecting_grad(lambda x, y: greater_equal(x, y)))
Minimum = binary("Minimum", "minimum", commutative=True, grad=_selecting_grad(lambda x, y: less_equal(x, y)))
Equal = binary("Equal", "equal", allowed=dtypes.ALL, out=dtypes.bool, commutative=True)
NotEqual = binary("NotEqual", "not_equal", allowed=dtypes.ALL, out=dtypes.bool, commutative=True)
Less = binary("Less", "less", out=dtypes.bool)
LessEqual = binary("LessEqual", "less_equal", out=dtypes.bool)
Greater = binary("Greater", "greater", out=dtypes.bool)
GreaterEqual = binary("GreaterEqual", "greater_equal", out=dtypes.bool)
LogicalAnd = binary("LogicalAnd", "logical_and", allowed=(dtypes.bool,), commutative=True, grad=NOT_DIFFERENTIABLE)
LogicalOr = binary("LogicalOr", "logical_or", allowed=(dtypes.bool,), commutative=True, grad=NOT_DIFFERENTIABLE)
SquaredDifference = op("SquaredDifference", shape=rules.broadcast, dtype=rules.same_dtype(*SIGNED),
                       kernel=lambda ctx, x, y: ctx.xp.square(x - y), elementwise=True, commutative=True,
                       grad=_squared_difference_grad, inputs=("x", "y"))


# -- elementwise unary --------------------------------------------------------------------------
def _sigmoid(ctx, x):
    xp = ctx.xp
    return xp.exp(-xp.logaddexp(x.dtype.type(0), -x)).astype(x.dtype, copy=False)


def _rsqrt(ctx, x):
    return ctx.xp.reciprocal(ctx.xp.sqrt(x))


def _sign(ctx, x):
    return ctx.xp.sign(x)


Neg = unary("Neg", ufunc_kernel("negative"), allowed=SIGNED, ufunc="negative",
            grad=_output_grad(lambda x, z, dz: negative(dz)))
Abs = unary("Abs", ufunc_kernel("absolute"), allowed=SIGNED, ufunc="absolute",
            grad=_output_grad(lambda x, z, dz: multiply(dz, sign(x))))
Sign = unary("Sign", _sign, allowed=SIGNED, grad=_sign_grad)
Square = unary("Square", ufunc_kernel("square"), ufunc="square",
               grad=_output_grad(lambda x, z, dz: multiply(dz, multiply(x, 2))))
Sqrt = unary("Sqrt", ufunc_kernel("sqrt"), allowed=FLOATING, ufunc="sqrt",
             grad=_output_grad(lambda x, z, dz: truediv(multiply(dz, 0.5), z)))
Rsqrt = unary("Rsqrt", _rsqrt, allowed=FLOATING,
              grad=_output_grad(lambda x, z, dz: multiply(dz, multiply(multiply(square(z), z), -0.5))))
Exp = unary("Exp", ufunc_kernel("exp"), allowed=FLOATING, ufunc="exp",
            grad=_output_grad(lambda x, z, dz: multiply(dz, z)))
Log = unary("Log", ufunc_kernel("log"), allowed=FLOATING, ufunc="log",
            grad=_output_grad(lambda x, z, dz: truediv(dz, x)))
Log1p = unary("Log1p", ufunc_kernel("log1p"), allowed=FLOATING, ufunc="log1p",
              grad=_output_grad(lambda x, z, dz: truediv(dz, add(x, 1))))
Sin = unary("Sin", ufunc_kernel("sin"), allowed=FLOATING, ufunc="sin",
            grad=_output_grad(lambda x, z, dz: multiply(dz, cos(x))))
Cos = unary("Cos", ufunc_kernel("cos"), allowed=FLOATING, ufunc="cos",
            grad=_output_grad(lambda x, z, dz: negative(multiply(dz, sin(x)))))
Tanh = unary("Tanh", ufunc_kernel("tanh"), allowed=FLOATING, ufunc="tanh",
             grad=_output_grad(lambda x, z, dz: multiply(dz, subtract(1, square(z)))))
Sigmoid = unary("Sigmoid", _sigmoid, allowed=FLOATING,
                grad=_output_grad(lambda x, z, dz: multiply(dz, multiply(z, subtract(1, z)))))
# Piecewise constant: TF gives them no gradient (None), so a loss through them trains nothing before them.
# Round is half to even, as TF's (and numpy's) round; integers pass through unchanged.
Round = unary("Round", ufunc_kernel("round"), grad=lambda op, dz: [None])
Floor = unary("Floor", ufunc_kernel("floor"), allowed=FLOATING, ufunc="floor", grad=lambda op, dz: [None])
Ceil = unary("Ceil", ufunc_kernel("ceil"), allowed=FLOATING, ufunc="ceil", grad=lambda op, dz: [None])
LogicalNot = op("LogicalNot", shape=rules.unchanged, dtype=rules.same_dtype(dtypes.bool),
                kernel=ufunc_kernel("logical_not"), elementwise=True, ufunc="logical_not", grad=NOT_DIFFERENTIABLE,
                inputs=("x",))
def _cast_dtype(args, attrs):
    if (args[0].dtype is dtypes.string) != (attrs["DstT"] is dtypes.string):  # as TF: as_string/to_number
        raise ShapeError(f"Cast from {args[0].dtype.name} to {attrs['DstT'].name} is not supported; use "
                         f"tf.as_string or tf.strings.to_number")
    return attrs["DstT"]


Cast = op("Cast", shape=rules.unchanged, dtype=_cast_dtype, elementwise=True, grad=_cast_grad,
          kernel=lambda ctx, x, DstT: x.astype(DstT.np),  # noqa: N803 - TF's attr name
          inputs=("x",), attrs={"DstT": attr("type")})


def _select_dtype(args, attrs):
    if args[0].dtype is not dtypes.bool:
        raise ShapeError(f"condition must be bool, got {args[0].dtype.name}")
    return rules.same_dtype()(args[1:], attrs)


Select = op("Select", shape=rules.broadcast, dtype=_select_dtype, kernel=ufunc_kernel("where"), elementwise=True,
            grad=_select_grad, inputs=("condition", "x", "y"))


def _add_n_shape(args, attrs):
    if not args:
        raise ShapeError("add_n needs at least one input")
    shapes = [a.shape for a in args]
    known = [s for s in shapes if s is not None]
    for s in known[1:]:
        if len(s) != len(known[0]) or any(a is not None and b is not None and a != b for a, b in zip(s, known[0])):
            raise ShapeError(f"all inputs must have the same shape, got {', '.join(rules.fmt(s) for s in shapes)}")
    return rules.broadcast_shapes(*known) if known else None


def _add_n(ctx, *xs):
    total = xs[0] + xs[1] if len(xs) > 1 else xs[0].copy()
    for x in xs[2:]:
        total += x
    return total


AddN = op("AddN", shape=_add_n_shape, dtype=rules.same_dtype(*NUMERIC), kernel=_add_n,
          grad=lambda op, dz: [dz] * len(op.inputs), inputs=("*inputs",))


# -- matmul -------------------------------------------------------------------------------------
def _matmul_shape(args, attrs):
    a, b = args[0].shape, args[1].shape
    if a is None or b is None:
        return None
    if len(a) < 2 or len(b) < 2:
        raise ShapeError(f"both inputs must be at least rank 2, got {rules.fmt(a)} and {rules.fmt(b)}")
    m, k = (a[-1], a[-2]) if attrs["transpose_a"] else (a[-2], a[-1])
    k2, n = (b[-1], b[-2]) if attrs["transpose_b"] else (b[-2], b[-1])
    if k is not None and k2 is not None and k != k2:
        ta, tb = ("transposed " if attrs["transpose_a"] else ""), ("transposed " if attrs["transpose_b"] else "")
        raise ShapeError(f"Dimensions must be equal, but are {k} and {k2}: the inner dimension of {ta}a "
                         f"{rules.fmt(a)} must match that of {tb}b {rules.fmt(b)}")
    batch = rules.broadcast_shapes(a[:-2], b[:-2])
    return batch + (m, n)


def _matmul(ctx, a, b, transpose_a, transpose_b):
    a, b = interruptible.oriented(ctx.xp, a, b, transpose_a, transpose_b)
    return interruptible.matmul(ctx, a, b)  # in blocks when large, so a cancellation stops it soon


MatMul = op("MatMul", shape=_matmul_shape, dtype=rules.same_dtype(*NUMERIC), kernel=_matmul, grad=_matmul_grad,
            inputs=("a", "b"), attrs={"transpose_a": attr("bool", False), "transpose_b": attr("bool", False)})


# -- _FusedMatMul: a product, + a bias vector, then ReLU or not (compiler/fuse_products.py) -----------------
def _fused_matmul_shape(args, attrs):
    shape = _matmul_shape(args[:2], attrs)
    bias = args[2].shape
    if shape is not None and (bias is None or len(bias) != 1 or bias[0] not in (None, shape[-1])):
        raise ShapeError(f"bias of shape {rules.fmt(bias)} does not match the product's {rules.fmt(shape)}")
    return shape


def _fused_matmul(ctx, a, b, bias, transpose_a, transpose_b, activation="", covers=()):
    """MatMul, then + bias, then the activation (Relu or none), each block finished while in the cache."""
    if activation not in ("", "Relu"):
        raise ValueError(f"unknown activation {activation!r}")
    a, b = interruptible.oriented(ctx.xp, a, b, transpose_a, transpose_b)
    if bias.shape != (b.shape[-1],):
        raise ValueError(f"bias of shape {list(bias.shape)} does not match the product's {b.shape[-1]} columns")
    return interruptible.matmul(ctx, a, b, epilogue=interruptible.AddRow(bias, activation == "Relu"))


FusedMatMul = op("_FusedMatMul", shape=_fused_matmul_shape, dtype=rules.same_dtype(*NUMERIC), kernel=_fused_matmul,
                 grad=NOT_DIFFERENTIABLE, inputs=("a", "b", "bias"), compiler_only=True,
                 attrs={"transpose_a": attr("bool", False), "transpose_b": attr("bool", False),
                        "activation": attr("string", ""), "covers": attr("list(string)")})


# -- SumToShape: the adjoint of broadcasting (built by the gradients of broadcasting ops) -------------
def _host_ints(ctx, array) -> tuple:
    return tuple(np.asarray(ctx.to_host(array)).reshape(-1).tolist())


def summed_axes(grad_shape: tuple, target: tuple) -> tuple:
    """Axes of `grad_shape` to sum so that it becomes `target` (leading extra axes, and 1-dims of target)."""
    lead = len(grad_shape) - len(target)
    return tuple(range(lead)) + tuple(lead + i for i, d in enumerate(target) if d == 1 and grad_shape[lead + i] != 1)


def _sum_to_shape(ctx, grad, shape, static_shape):
    target = _host_ints(ctx, shape)
    if tuple(grad.shape) == target:
        return grad
    axes = summed_axes(tuple(grad.shape), target)
    if not axes:
        return grad.reshape(target)
    if (ctx.xp is np and grad.dtype in _GEMV_DTYPES and grad.size >= GEMV_ELEMENTS and axes == tuple(range(len(axes)))
            and grad.flags.c_contiguous):
        # A bias's gradient sums the leading axes: as ones @ rows it is one BLAS pass over memory, ~10x
        # numpy's sum over those axes (W10's conv1 bias, [128, 28, 28, 32] -> [32]: 1.64 -> 0.17 ms).
        rows = grad.reshape(math.prod(grad.shape[:len(axes)]), -1)
        return (np.ones(rows.shape[0], grad.dtype) @ rows).reshape(target)
    return summed(ctx.xp, grad, axes).reshape(target)


_GEMV_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
GEMV_ELEMENTS = 1 << 16


SumToShape = op("SumToShape", shape=lambda args, attrs: attrs["static_shape"].dims,
                dtype=lambda args, attrs: args[0].dtype, kernel=_sum_to_shape,
                grad=lambda op, dy: [emit("BroadcastTo", dy, dynamic_shape(op.inputs[0])), None],
                inputs=("grad", "shape"), attrs={"static_shape": attr("shape")})


def sum_to_shape(grad: Tensor | None, like: Tensor) -> Tensor | None:
    """`grad` (of a value `like` was broadcast into) summed back to the shape of `like`."""
    if grad is None:
        return None
    known = like._shape is not None and None not in like._shape
    if known and grad._shape == like._shape:
        return grad
    target = constant(np.asarray(like._shape, np.int32)) if known else dynamic_shape(like)
    return apply_op("SumToShape", (grad, target), {"static_shape": ShapeAttr(like._shape)}, "SumToShape").outputs[0]


# -- Python API ---------------------------------------------------------------------------------
def _binary_api(op_type, default_name):
    def fn(x, y, name=None):
        x, y = convert_pair(x, y)
        return apply_op(op_type, (x, y), {}, name or default_name).outputs[0]

    return _named(fn, default_name)


def _unary_api(op_type, default_name):
    def fn(x, name=None):
        return apply_op(op_type, (convert_to_tensor(x),), {}, name or default_name).outputs[0]

    return _named(fn, default_name)


def _named(fn, name: str):
    fn.__name__ = name
    return fn


# Default names as TF1: tf.add(x, y) is "Add", x + y is "add" (graphexec.ops.overloads names those).
add = _binary_api("Add", "Add")
subtract = _binary_api("Sub", "Sub")
multiply = _binary_api("Mul", "Mul")
floordiv = _binary_api("FloorDiv", "floordiv")
mod = floormod = _binary_api("FloorMod", "FloorMod")
pow = _binary_api("Pow", "Pow")  # noqa: A001 - TF's name
maximum = _binary_api("Maximum", "Maximum")
minimum = _binary_api("Minimum", "Minimum")
equal = _binary_api("Equal", "Equal")
not_equal = _binary_api("NotEqual", "NotEqual")
less = _binary_api("Less", "Less")
less_equal = _binary_api("LessEqual", "LessEqual")
greater = _binary_api("Greater", "Greater")
greater_equal = _binary_api("GreaterEqual", "GreaterEqual")
logical_and = _binary_api("LogicalAnd", "LogicalAnd")
logical_or = _binary_api("LogicalOr", "LogicalOr")
negative = _unary_api("Neg", "Neg")
abs = _unary_api("Abs", "Abs")  # noqa: A001
sign = _unary_api("Sign", "Sign")
square = _unary_api("Square", "Square")
sqrt = _unary_api("Sqrt", "Sqrt")
rsqrt = _unary_api("Rsqrt", "Rsqrt")
exp = _unary_api("Exp", "Exp")
log = _unary_api("Log", "Log")
log1p = _unary_api("Log1p", "Log1p")
sin = _unary_api("Sin", "Sin")
cos = _unary_api("Cos", "Cos")
tanh = _unary_api("Tanh", "Tanh")
sigmoid = _unary_api("Sigmoid", "Sigmoid")
logical_not = _unary_api("LogicalNot", "LogicalNot")
round = _unary_api("Round", "Round")  # noqa: A001 - TF's name
floor = _unary_api("Floor", "Floor")
ceil = _unary_api("Ceil", "Ceil")
squared_difference = _binary_api("SquaredDifference", "SquaredDifference")


def truediv(x, y, name=None):
    """x / y; integer inputs are cast to float first (int8/16 -> float32, int32/64 -> float64), as in TF."""
    x, y = convert_pair(x, y)
    if x.dtype.is_integer:
        target = dtypes.float32 if x.dtype.size <= 2 else dtypes.float64
        x, y = cast(x, target), cast(y, target)
    return apply_op("RealDiv", (x, y), {}, name or "truediv").outputs[0]


divide = truediv


def cast(x, dtype, name=None):
    x = convert_to_tensor(x)
    dtype = dtypes.as_dtype(dtype)
    if x.dtype is dtype:
        return x
    return apply_op("Cast", (x,), {"DstT": dtype}, name or "Cast").outputs[0]


def to_float(x, name="ToFloat"):
    return cast(x, dtypes.float32, name)


def where(condition, x=None, y=None, name=None):
    if x is None and y is None:  # the coordinates of the true elements (an array-family op)
        return emit("Where", condition, name=name)
    if x is None or y is None:
        raise ValueError("x and y must both be given, or neither")
    condition = convert_to_tensor(condition, dtype=dtypes.bool)
    x, y = convert_pair(x, y)
    return apply_op("Select", (condition, x, y), {}, name or "Select").outputs[0]


where_v2 = where


def add_n(inputs, name=None):
    tensors = [convert_to_tensor(t) for t in inputs]
    if len(tensors) == 1:
        return tensors[0]
    return apply_op("AddN", tensors, {}, name or "AddN").outputs[0]


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    t = convert_to_tensor(t)
    return maximum(minimum(t, clip_value_max), clip_value_min, name=name or "clip_by_value")


def matmul(a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False, name=None):
    a, b = convert_pair(a, b)
    attrs = {"transpose_a": bool(transpose_a or adjoint_a), "transpose_b": bool(transpose_b or adjoint_b)}
    return apply_op("MatMul", (a, b), attrs, name or "MatMul").outputs[0]
