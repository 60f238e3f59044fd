"""tf.math: TF1's math namespace, re-exporting the ops of the math, reduction, scan and segment families
under their tf.math names."""
from graphexec.ops.indexing_ops import unsorted_segment_sum
from graphexec.ops.math_ops import (abs, add, add_n, cos, divide, equal, exp, floordiv, floormod,  # noqa: A004
                                    greater, greater_equal, less, less_equal, log, log1p, logical_and, logical_not,
                                    logical_or, maximum, minimum, mod, multiply, negative, not_equal, pow, rsqrt,
                                    sigmoid, sign, sin, sqrt, square, subtract, tanh, truediv)
from graphexec.ops.nn_ops import top_k
from graphexec.ops.reduction_ops import (argmax, argmin, reduce_all, reduce_any, reduce_max, reduce_mean, reduce_min,
                                         reduce_prod, reduce_sum)
from graphexec.ops.scan_ops import cumprod, cumsum
from graphexec.ops.segment_ops import segment_max, segment_mean, segment_min, segment_sum

__all__ = ["abs", "add", "add_n", "argmax", "argmin", "cos", "cumprod", "cumsum", "divide", "equal", "exp",
           "floordiv", "floormod", "greater", "greater_equal", "less", "less_equal", "log", "log1p", "logical_and",
           "logical_not", "logical_or", "maximum", "minimum", "mod", "multiply", "negative", "not_equal", "pow",
           "reduce_all", "reduce_any", "reduce_max", "reduce_mean", "reduce_min", "reduce_prod", "reduce_sum", "rsqrt",
           "segment_max", "segment_mean", "segment_min", "segment_sum", "sigmoid", "sign", "sin", "sqrt", "square",
           "subtract", "tanh", "top_k", "truediv", "unsorted_segment_sum"]
