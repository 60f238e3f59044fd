"""tf.math: TF1's math namespace, re-exporting the ops of the math, reduction, scan and segment families
under their tf.math names."""
from graphexec import api_gaps
from graphexec.ops.indexing_ops import unsorted_segment_sum
from graphexec.ops.math_ops import (abs, add, add_n, ceil, cos, divide, equal, exp, floor,  # noqa: A004
                                    floordiv, floormod, greater, greater_equal, less, less_equal, log, log1p,
                                    logical_and, logical_not, logical_or, maximum, minimum, mod, multiply, negative,
                                    not_equal, pow, round, rsqrt, sigmoid, sign, sin, sqrt, square, squared_difference,
                                    subtract, tanh, truediv)
from graphexec.ops.nn_ops import top_k
from graphexec.ops.reduction_ops import (argmax, argmin, reduce_all, reduce_any, reduce_max, reduce_mean, reduce_min,
                                         reduce_prod, reduce_sum)
from graphexec.ops.scan_ops import cumprod, cumsum
from graphexec.ops.segment_ops import segment_max, segment_mean, segment_min, segment_sum

__all__ = ["abs", "add", "add_n", "argmax", "argmin", "ceil", "cos", "cumprod", "cumsum", "divide", "equal", "exp",
           "floor", "floordiv", "floormod", "greater", "greater_equal", "less", "less_equal", "log", "log1p",
           "logical_and", "logical_not", "logical_or", "maximum", "minimum", "mod", "multiply", "negative", "not_equal",
           "pow", "reduce_all", "reduce_any", "reduce_max", "reduce_mean", "reduce_min", "reduce_prod", "reduce_sum",
           "round", "rsqrt", "segment_max", "segment_mean", "segment_min", "segment_sum", "sigmoid", "sign", "sin",
           "sqrt", "square", "squared_difference", "subtract", "tanh", "top_k", "truediv", "unsorted_segment_sum"]

__getattr__ = api_gaps.missing_names("math", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
