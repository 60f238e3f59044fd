"""tf.debugging (and TF1's top-level tf.assert_* names): checks that fail a run with InvalidArgumentError.

Each check is an Assert op (graphexec.ops.debug_ops) over a condition built from other ops, with TF1's
data and messages: "assertion failed: [Condition x == y did not hold element-wise:] [x (x:0) = ] [1 2]".
When the values are known while building, the check is made at once, as in TF1: a failing one raises
InvalidArgumentError (tf.assert_rank: ValueError) right there; a passing static shape check is a no-op.
"""
from __future__ import annotations

import numpy as np

from graphexec import api_gaps, dtypes, errors
from graphexec.framework import name_scope
from graphexec.ops.array_ops import rank as rank_of, reshape, shape as shape_of
from graphexec.ops.control_ops import group, no_op
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.debug_ops import Assert, check_numerics, verify_tensor_all_finite
from graphexec.ops.math_ops import abs as absolute, equal, greater, greater_equal, less, less_equal, not_equal, subtract
from graphexec.ops.reduction_ops import reduce_all

__all__ = ["Assert", "check_numerics", "assert_equal", "assert_none_equal", "assert_less", "assert_less_equal",
           "assert_greater", "assert_greater_equal", "assert_positive", "assert_negative", "assert_non_negative",
           "assert_non_positive", "assert_rank", "assert_rank_at_least", "assert_integer", "assert_type",
           "assert_scalar", "assert_shapes", "is_nan", "is_inf", "is_finite", "assert_near", "assert_all_finite",
           "is_non_decreasing", "is_strictly_increasing", "is_numeric_tensor"]


def _static(t):
    return t.aval.value


def _check_now(condition_value, data) -> None:
    """TF1's static assert: a check whose values are known fails while building."""
    if not condition_value:
        texts = [str(item) if not hasattr(item, "aval") else
                 (str(_static(item)) if _static(item) is not None else item.name) for item in data]
        raise errors.InvalidArgumentError(None, None, "\n".join(texts))


def _binary_assert(symbol, default_name, build, check, x, y, data, summarize, message, name):
    with name_scope(name, default_name):
        x = convert_to_tensor(x, name="x")
        y = convert_to_tensor(y, dtype=x.dtype, name="y")
        if data is None:
            data = ([message] if message is not None else []) + [
                f"Condition x {symbol} y did not hold element-wise:", f"x ({x.name}) = ", x, f"y ({y.name}) = ", y]
        condition = reduce_all(build(x, y))
        if _static(x) is not None and _static(y) is not None:
            _check_now(bool(np.all(check(_static(x), _static(y)))), data)
        return Assert(condition, data, summarize=summarize)


def assert_equal(x, y, data=None, summarize=None, message=None, name=None):
    return _binary_assert("==", "assert_equal", equal, np.equal, x, y, data, summarize, message, name)


def assert_none_equal(x, y, data=None, summarize=None, message=None, name=None):
    return _binary_assert("!=", "assert_none_equal", not_equal, np.not_equal, x, y, data, summarize, message, name)


def assert_less(x, y, data=None, summarize=None, message=None, name=None):
    return _binary_assert("<", "assert_less", less, np.less, x, y, data, summarize, message, name)


def assert_less_equal(x, y, data=None, summarize=None, message=None, name=None):
    return _binary_assert("<=", "assert_less_equal", less_equal, np.less_equal, x, y, data, summarize, message, name)


def assert_greater(x, y, data=None, summarize=None, message=None, name=None):
    return _binary_assert(">", "assert_greater", greater, np.greater, x, y, data, summarize, message, name)


def assert_greater_equal(x, y, data=None, summarize=None, message=None, name=None):
    return _binary_assert(">=", "assert_greater_equal", greater_equal, np.greater_equal, x, y, data, summarize,
                          message, name)


def _sign_assert(default_name, condition_text, against_zero, x, data, summarize, message, name):
    """x compared with 0 (assert_positive: 0 < x), with TF1's data: the message, even when empty, first."""
    with name_scope(name, default_name):
        x = convert_to_tensor(x)
        if data is None:
            data = [message or "", f"Condition x {condition_text} did not hold element-wise:", f"x ({x.name}) = ", x]
        zero = convert_to_tensor(np.zeros((), x.dtype.np))
        return against_zero(zero, x, data=data, summarize=summarize)


def assert_positive(x, data=None, summarize=None, message=None, name=None):
    return _sign_assert("assert_positive", "> 0", assert_less, x, data, summarize, message, name)


def assert_negative(x, data=None, summarize=None, message=None, name=None):
    return _sign_assert("assert_negative", "< 0", assert_greater, x, data, summarize, message, name)


def assert_non_negative(x, data=None, summarize=None, message=None, name=None):
    return _sign_assert("assert_non_negative", ">= 0", assert_less_equal, x, data, summarize, message, name)


def assert_non_positive(x, data=None, summarize=None, message=None, name=None):
    return _sign_assert("assert_non_positive", "<= 0", assert_greater_equal, x, data, summarize, message, name)


def assert_near(x, y, rtol=None, atol=None, data=None, summarize=None, message=None, name=None):
    """|x - y| <= atol + rtol * |y| everywhere; rtol and atol default to 10 * the dtype's epsilon, as TF1."""
    with name_scope(name, "assert_near"):
        x = convert_to_tensor(x, name="x")
        y = convert_to_tensor(y, dtype=x.dtype, name="y")
        tolerance = 10 * float(np.finfo(x.dtype.np).eps)
        rtol = tolerance if rtol is None else rtol
        atol = tolerance if atol is None else atol
        if data is None:
            data = [message or "", f"x and y not equal to tolerance rtol = {rtol}, atol = {atol}",
                    f"x ({x.name}) = ", x, f"y ({y.name}) = ", y]
        close = less_equal(absolute(subtract(x, y)), atol + rtol * absolute(y))
        return Assert(reduce_all(close), data, summarize=summarize)


def assert_all_finite(t=None, msg=None, name=None, x=None, message=None):
    """`t` unchanged, after a check that fails the run when it holds a NaN or an infinity."""
    return verify_tensor_all_finite(t, msg, name, x, message)


def _shape_text(shape) -> str:
    dims = shape.as_list() if shape.ndims is not None else None
    return "<unknown>" if dims is None else "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def _rank_assert(x, rank, at_least, data, summarize, message, name, default_name):
    with name_scope(name, default_name):
        x = convert_to_tensor(x)
        prefix = f"{message}.  " if message else ""
        if isinstance(rank, (int, np.integer)) and x.shape.ndims is not None:
            ok = x.shape.ndims >= rank if at_least else x.shape.ndims == rank
            if not ok:
                wording = "at least rank" if at_least else "rank"
                raise ValueError(f"{prefix}Tensor {x.name} must have {wording} {int(rank)}.  Received rank "
                                 f"{x.shape.ndims}, shape {_shape_text(x.shape)}")
            return no_op(name="static_checks_determined_all_ok")
        rank = convert_to_tensor(rank, dtype=dtypes.int32)
        if data is None:
            wording = "at least rank" if at_least else "rank"
            data = [message or "", f"Tensor {x.name} must have {wording}", rank, "Received shape: ", shape_of(x)]
        actual = rank_of(x)
        return Assert(greater_equal(actual, rank) if at_least else equal(actual, rank), data, summarize=summarize)


def assert_rank(x, rank, data=None, summarize=None, message=None, name=None):
    return _rank_assert(x, rank, False, data, summarize, message, name, "assert_rank")


def assert_rank_at_least(x, rank, data=None, summarize=None, message=None, name=None):
    return _rank_assert(x, rank, True, data, summarize, message, name, "assert_rank_at_least")


def assert_integer(x, message=None, name=None):
    x = convert_to_tensor(x)
    if not x.dtype.is_integer:
        raise TypeError(f"{message + ' ' if message else ''}Expected \"x\" to be integer type.  Found: {x.name} of "
                        f"dtype {x.dtype.name}")
    return no_op(name=name or "statically_determined_was_integer")


def assert_type(tensor, tf_type, message=None, name=None):
    tensor = convert_to_tensor(tensor)
    if tensor.dtype is not dtypes.as_dtype(tf_type):
        raise TypeError(f"{message + ' ' if message else ''}{tensor.name} must be of type "
                        f"{dtypes.as_dtype(tf_type).name}; got {tensor.dtype.name}")
    return no_op(name=name or "statically_determined_correct_type")


def assert_scalar(tensor, name=None, message=None):
    tensor = convert_to_tensor(tensor)
    if tensor.shape.ndims != 0:
        raise ValueError(f"{message + ' ' if message else ''}Expected scalar shape for {tensor.name}, saw shape: "
                         f"{_shape_text(tensor.shape)}.")
    return tensor


def assert_shapes(shapes, data=None, summarize=None, message=None, name=None):
    """Check that each (tensor, [dim, ...]) pair has its shape, where a dim is an int, None (any) or a
    name that must mean the same size in every pair. Known sizes are checked now (ValueError); unknown
    ones by Assert ops at run time. Returns an op that groups those (a no-op when all were known)."""
    pairs = list(shapes.items()) if isinstance(shapes, dict) else list(shapes)
    with name_scope(name, "assert_shapes"):
        sizes: dict[str, object] = {}
        checks = []
        prefix = f"{message}.  " if message else ""
        for tensor, spec in pairs:
            tensor = convert_to_tensor(tensor)
            spec = list(spec)
            if tensor.shape.ndims is not None and tensor.shape.ndims != len(spec):
                raise ValueError(f"{prefix}Specified by tensor {tensor.name} dimension {len(spec)}.  Tensor "
                                 f"{tensor.name} must have rank {len(spec)}.  Received rank {tensor.shape.ndims}, "
                                 f"shape {_shape_text(tensor.shape)}")
            dims = tensor.shape.as_list() if tensor.shape.ndims is not None else [None] * len(spec)
            for axis, (want, have) in enumerate(zip(spec, dims)):
                if want is None:
                    continue
                if isinstance(want, str):
                    if want not in sizes:
                        sizes[want] = have if have is not None else shape_of(tensor)[axis]
                        continue
                    want = sizes[want]
                checks.extend(_dim_check(tensor, axis, want, have, prefix, data, summarize))
        if not checks:
            return no_op(name="static_checks_determined_all_ok")
        return group(*checks)


def _dim_check(tensor, axis, want, have, prefix, data, summarize):
    if isinstance(want, (int, np.integer)) and have is not None:
        if have != want:
            raise ValueError(f"{prefix}Specified by tensor {tensor.name} dimension {axis}.  Tensor {tensor.name} "
                             f"must have size {int(want)}.  Received size {have}, shape {_shape_text(tensor.shape)}")
        return []
    actual = shape_of(tensor)[axis]
    want = convert_to_tensor(want, dtype=dtypes.int32)
    wording = f"{prefix}Specified by tensor {tensor.name} dimension {axis}.  Tensor {tensor.name} must have size"
    texts = data if data is not None else [wording, want, "Received size", actual]
    return [Assert(equal(actual, want), texts, summarize=summarize)]


def _adjacent_pairs(x):
    """(earlier, later) neighbours of x flattened in row-major order."""
    flat = reshape(convert_to_tensor(x), [-1])
    return flat[:-1], flat[1:]


def is_non_decreasing(x, name=None):
    """True when x, flattened, never decreases (also when it has fewer than two elements)."""
    with name_scope(name, "is_non_decreasing"):
        earlier, later = _adjacent_pairs(x)
        return reduce_all(less_equal(earlier, later))


def is_strictly_increasing(x, name=None):
    with name_scope(name, "is_strictly_increasing"):
        earlier, later = _adjacent_pairs(x)
        return reduce_all(less(earlier, later))


def is_numeric_tensor(tensor) -> bool:
    return hasattr(tensor, "dtype") and hasattr(tensor, "op") and tensor.dtype in dtypes.NUMERIC


def is_nan(x, name=None):
    x = convert_to_tensor(x)
    return not_equal(x, x, name=name or "IsNan")


def is_inf(x, name=None):
    x = convert_to_tensor(x)
    return equal(absolute(x), np.inf, name=name or "IsInf")


def is_finite(x, name=None):
    """x - x is 0 for every finite x and NaN for infinities and NaNs."""
    x = convert_to_tensor(x)
    return equal(subtract(x, x), 0, name=name or "IsFinite")


__getattr__ = api_gaps.missing_names("debugging", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
