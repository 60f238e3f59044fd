"""ModeKeys and EstimatorSpec: what a model_fn receives and returns."""
from __future__ import annotations

import collections

from graphexec.framework import Operation, Tensor


class ModeKeys:
    TRAIN = "train"
    EVAL = "eval"
    PREDICT = "infer"


class EstimatorSpec(collections.namedtuple("EstimatorSpec", [
        "mode", "predictions", "loss", "train_op", "eval_metric_ops", "export_outputs", "training_chief_hooks",
        "training_hooks", "scaffold", "evaluation_hooks", "prediction_hooks"])):
    """The model_fn's graph for one mode: TRAIN needs loss and train_op, EVAL needs loss (and may add
    eval_metric_ops: name -> (value, update_op) from tf.metrics), PREDICT needs predictions (a tensor or
    a dict of tensors whose first dimension is the batch)."""

    def __new__(cls, mode, predictions=None, loss=None, train_op=None, eval_metric_ops=None, export_outputs=None,
                training_chief_hooks=None, training_hooks=None, scaffold=None, evaluation_hooks=None,
                prediction_hooks=None):
        if mode not in (ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT):
            raise ValueError(f"mode={mode!r} is not one of ModeKeys.TRAIN, EVAL, PREDICT.")
        if mode == ModeKeys.TRAIN and train_op is None:
            raise ValueError("Missing train_op.")
        if mode in (ModeKeys.TRAIN, ModeKeys.EVAL) and loss is None:
            raise ValueError("Missing loss.")
        if mode == ModeKeys.PREDICT and predictions is None:
            raise ValueError("Missing predictions.")
        if loss is not None and (not isinstance(loss, Tensor) or loss.shape.ndims not in (0, None)):
            raise ValueError(f"Loss must be a scalar Tensor, got {loss!r}.")
        if train_op is not None and not isinstance(train_op, (Tensor, Operation)):
            raise TypeError(f"train_op must be an Operation or Tensor, given: {train_op!r}")
        eval_metric_ops = dict(eval_metric_ops or {})
        for name, pair in eval_metric_ops.items():
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise TypeError(f"Values of eval_metric_ops must be (metric_value, update_op) tuples, given: {pair!r} "
                                f"for key: {name}")
        return super().__new__(cls, mode, predictions, loss, train_op, eval_metric_ops, export_outputs or {},
                               tuple(training_chief_hooks or ()), tuple(training_hooks or ()), scaffold,
                               tuple(evaluation_hooks or ()), tuple(prediction_hooks or ()))
