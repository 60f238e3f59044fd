"""tf.metrics (TF1): streaming metrics as (value, update_op) pairs over local variables.

Each metric keeps running totals in non-trainable LOCAL_VARIABLES (also in METRIC_VARIABLES);
`update_op` adds one batch and returns the metric including it; `value` reads the totals.
local_variables_initializer() resets them.
"""
from __future__ import annotations

from graphexec import api_gaps, dtypes
from graphexec.framework import get_default_graph, name_scope
from graphexec.ops.array_ops import ones_like, zeros_like
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.math_ops import cast, equal, greater, multiply, truediv, where
from graphexec.ops.reduction_ops import reduce_sum
from graphexec.variables import GraphKeys, Variable


def _metric_variable(name: str) -> Variable:
    """A float32 scalar running total, local to the session and never trained."""
    return Variable(lambda: convert_to_tensor(0.0, dtype=dtypes.float32), name=name, trainable=False,
                    collections=[GraphKeys.LOCAL_VARIABLES, GraphKeys.METRIC_VARIABLES])


def _safe_div(numerator, denominator, name):
    positive = greater(denominator, 0)
    return where(positive, truediv(numerator, where(positive, denominator, ones_like(denominator))),
                 zeros_like(numerator), name=name)


def _collect(collections, value):
    for key in collections or ():
        get_default_graph().add_to_collection(key, value)


def mean(values, weights=None, metrics_collections=None, updates_collections=None, name=None):
    """The (weighted) mean of every value seen since the local variables were last initialized."""
    with name_scope(name, "mean"):
        values = cast(convert_to_tensor(values), dtypes.float32)
        total, count = _metric_variable("total"), _metric_variable("count")
        if weights is None:
            batch_count = cast(reduce_sum(ones_like(values)), dtypes.float32)
        else:
            weights = multiply(cast(convert_to_tensor(weights), dtypes.float32), ones_like(values))
            values = multiply(values, weights)
            batch_count = reduce_sum(weights)
        update_total = total.assign_add(reduce_sum(values))
        update_count = count.assign_add(batch_count)
        value = _safe_div(total.value(), count.value(), "value")
        update_op = _safe_div(update_total, update_count, "update_op")
    _collect(metrics_collections, value)
    _collect(updates_collections, update_op)
    return value, update_op


def accuracy(labels, predictions, weights=None, metrics_collections=None, updates_collections=None, name=None):
    """The fraction of predictions equal to labels, over every batch seen (optionally weighted)."""
    with name_scope(name, "accuracy"):
        predictions = convert_to_tensor(predictions)
        labels = convert_to_tensor(labels)
        if labels.dtype is not predictions.dtype:
            labels = cast(labels, predictions.dtype)
        is_correct = cast(equal(predictions, labels), dtypes.float32)
        return mean(is_correct, weights, metrics_collections, updates_collections, name="accuracy")


__all__ = ["mean", "accuracy"]


__getattr__ = api_gaps.missing_names("metrics", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
