"""tf.losses (TF1): per-element losses, weighted and reduced, and added to the LOSSES collection.

Every loss computes its per-element values, multiplies them by `weights` (broadcast), then reduces
them as `reduction` says. The default, SUM_BY_NONZERO_WEIGHTS, divides the weighted sum by the number
of elements whose weight is not zero (0 when there are none), exactly as TF1. The arithmetic is done in
float32 or wider, and the result has the predictions' dtype.
"""
from __future__ import annotations

from graphexec import api_gaps, dtypes
from graphexec.framework import get_default_graph, name_scope
from graphexec.nn import (sigmoid_cross_entropy_with_logits, softmax_cross_entropy_with_logits_v2,
                          sparse_softmax_cross_entropy_with_logits)
from graphexec.ops.array_ops import ones_like, shape, size, stop_gradient, zeros_like
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.math_ops import (abs, add, add_n, cast, equal, greater, log, minimum, multiply,  # noqa: A004
                                    square, subtract, truediv, where)
from graphexec.ops.reduction_ops import reduce_sum
from graphexec.variables import GraphKeys


class Reduction:
    NONE = "none"
    SUM = "weighted_sum"
    SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"
    MEAN = "weighted_mean"
    SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"
    SUM_OVER_NONZERO_WEIGHTS = SUM_BY_NONZERO_WEIGHTS

    @classmethod
    def all(cls):
        return (cls.NONE, cls.SUM, cls.MEAN, cls.SUM_OVER_BATCH_SIZE, cls.SUM_OVER_NONZERO_WEIGHTS)

    @classmethod
    def validate(cls, key):
        if key not in cls.all():
            raise ValueError(f"Invalid Reduction Key {key}.")


def _safe_divide(numerator, denominator):
    """numerator / denominator, or 0 where the denominator is 0 (TF's div_no_nan)."""
    positive = greater(denominator, 0)
    return where(positive, truediv(numerator, where(positive, denominator, ones_like(denominator))),
                 zeros_like(numerator))


def _num_present(losses, weights):
    """How many elements of `losses` carry a non-zero weight (weights broadcast to the losses' shape)."""
    present = where(equal(weights, 0), zeros_like(weights), ones_like(weights))
    return reduce_sum(multiply(present, ones_like(losses)))


def compute_weighted_loss(losses, weights=1.0, scope=None, loss_collection=GraphKeys.LOSSES,
                          reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    Reduction.validate(reduction)
    losses = convert_to_tensor(losses)
    input_dtype = losses.dtype
    with name_scope(scope, "weighted_loss"):
        compute_dtype = dtypes.float64 if input_dtype is dtypes.float64 else dtypes.float32
        losses = cast(losses, compute_dtype)
        weights = cast(convert_to_tensor(weights), compute_dtype)
        weighted = multiply(losses, weights)
        if reduction == Reduction.NONE:
            loss = weighted
        else:
            total = reduce_sum(weighted)
            if reduction == Reduction.MEAN:
                total = _safe_divide(total, reduce_sum(multiply(ones_like(losses), weights)))
            elif reduction == Reduction.SUM_OVER_BATCH_SIZE:
                total = _safe_divide(total, cast(size(losses), compute_dtype))
            elif reduction == Reduction.SUM_BY_NONZERO_WEIGHTS:
                total = _safe_divide(total, _num_present(losses, weights))
            loss = total
        loss = cast(loss, input_dtype)
        if loss_collection:
            get_default_graph().add_to_collection(loss_collection, loss)
        return loss


def _pair(labels, predictions):
    predictions = convert_to_tensor(predictions)
    labels = convert_to_tensor(labels, dtype=predictions.dtype)
    if predictions.shape.dims is not None and labels.shape.dims is not None:
        if not _compatible(predictions.shape.dims, labels.shape.dims):
            raise ValueError(f"Shapes {predictions.shape} and {labels.shape} are incompatible")
    return labels, predictions


def _compatible(a, b):
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def mean_squared_error(labels, predictions, weights=1.0, scope=None, loss_collection=GraphKeys.LOSSES,
                       reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    with name_scope(scope, "mean_squared_error") as s:
        labels, predictions = _pair(labels, predictions)
        return compute_weighted_loss(square(subtract(predictions, labels)), weights, s, loss_collection, reduction)


def absolute_difference(labels, predictions, weights=1.0, scope=None, loss_collection=GraphKeys.LOSSES,
                        reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    with name_scope(scope, "absolute_difference") as s:
        labels, predictions = _pair(labels, predictions)
        return compute_weighted_loss(abs(subtract(predictions, labels)), weights, s, loss_collection, reduction)


def huber_loss(labels, predictions, weights=1.0, delta=1.0, scope=None, loss_collection=GraphKeys.LOSSES,
               reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """0.5 * x^2 for |x| <= delta, delta * (|x| - 0.5 * delta) beyond, with x = predictions - labels."""
    with name_scope(scope, "huber_loss") as s:
        labels, predictions = _pair(labels, predictions)
        error = abs(subtract(predictions, labels))
        quadratic = minimum(error, delta)
        linear = subtract(error, quadratic)
        losses = add(multiply(square(quadratic), 0.5), multiply(linear, delta))
        return compute_weighted_loss(losses, weights, s, loss_collection, reduction)


def log_loss(labels, predictions, weights=1.0, epsilon=1e-7, scope=None, loss_collection=GraphKeys.LOSSES,
             reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    with name_scope(scope, "log_loss") as s:
        labels, predictions = _pair(labels, predictions)
        positive = multiply(labels, log(add(predictions, epsilon)))
        negative = multiply(subtract(1, labels), log(add(subtract(1, predictions), epsilon)))
        losses = subtract(multiply(positive, -1), negative)
        return compute_weighted_loss(losses, weights, s, loss_collection, reduction)


def softmax_cross_entropy(onehot_labels, logits, weights=1.0, label_smoothing=0, scope=None,
                          loss_collection=GraphKeys.LOSSES, reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    with name_scope(scope, "softmax_cross_entropy_loss") as s:
        labels, logits = _labels_like_logits(onehot_labels, logits)
        if label_smoothing:
            classes = cast(_last_dim(labels), logits.dtype)
            labels = add(multiply(labels, 1 - label_smoothing), truediv(convert_to_tensor(
                label_smoothing, dtype=logits.dtype), classes))
        losses = softmax_cross_entropy_with_logits_v2(labels=stop_gradient(labels), logits=logits, name="xentropy")
        return compute_weighted_loss(losses, weights, s, loss_collection, reduction)


def _labels_like_logits(labels, logits):
    """(labels cast to the logits' dtype, logits), as tensors."""
    logits = convert_to_tensor(logits)
    return cast(convert_to_tensor(labels), logits.dtype), logits


def _last_dim(t):
    known = t.shape.dims[-1] if t.shape.ndims else None
    return convert_to_tensor(known, dtype=dtypes.int32) if known is not None else shape(t)[-1]


def sparse_softmax_cross_entropy(labels, logits, weights=1.0, scope=None, loss_collection=GraphKeys.LOSSES,
                                 reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    with name_scope(scope, "sparse_softmax_cross_entropy_loss") as s:
        losses = sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits, name="xentropy")
        return compute_weighted_loss(losses, weights, s, loss_collection, reduction)


def sigmoid_cross_entropy(multi_class_labels, logits, weights=1.0, label_smoothing=0, scope=None,
                          loss_collection=GraphKeys.LOSSES, reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    with name_scope(scope, "sigmoid_cross_entropy_loss") as s:
        labels, logits = _labels_like_logits(multi_class_labels, logits)
        labels = add(multiply(labels, 1 - label_smoothing), 0.5 * label_smoothing) if label_smoothing else labels
        losses = sigmoid_cross_entropy_with_logits(labels=labels, logits=logits, name="logistic_loss")
        return compute_weighted_loss(losses, weights, s, loss_collection, reduction)


# -- the LOSSES collection ------------------------------------------------------------------------------------------
def add_loss(loss, loss_collection=GraphKeys.LOSSES):
    if loss_collection:
        get_default_graph().add_to_collection(loss_collection, loss)


def get_losses(scope=None, loss_collection=GraphKeys.LOSSES):
    return get_default_graph().get_collection(loss_collection, scope)


def get_regularization_losses(scope=None):
    return get_default_graph().get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)


def get_regularization_loss(scope=None, name="total_regularization_loss"):
    losses = get_regularization_losses(scope)
    return add_n(losses, name=name) if losses else convert_to_tensor(0.0, name=name)


def get_total_loss(add_regularization_losses=True, name="total_loss", scope=None):
    losses = get_losses(scope) + (get_regularization_losses(scope) if add_regularization_losses else [])
    if not losses:
        raise ValueError("No losses found in the LOSSES collection.")
    return add_n(losses, name=name)


__getattr__ = api_gaps.missing_names("losses", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
