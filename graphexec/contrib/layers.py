"""tf.contrib.layers: fully_connected, conv2d, flatten, the xavier and variance-scaling initializers, and the
l1/l2 regularizers, named as TF1's contrib names them ("fully_connected/weights", "Conv/biases")."""
from __future__ import annotations

import numbers

from graphexec import nn
from graphexec.framework import name_scope
from graphexec.initializers import TRUNCATED_STDDEV, VarianceScaling, Zeros
from graphexec.layers.convolutional import Conv2D
from graphexec.layers.core import Dense, Flatten
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.math_ops import abs as tf_abs, multiply
from graphexec.ops.reduction_ops import reduce_sum
from graphexec.variable_scope import variable_scope
from graphexec.variables import GraphKeys

__all__ = ["fully_connected", "conv2d", "flatten", "xavier_initializer", "xavier_initializer_conv2d",
           "variance_scaling_initializer", "l1_regularizer", "l2_regularizer"]

_CONTRIB_NAMES = {"kernel": "weights", "bias": "biases"}
_ZEROS = Zeros()  # contrib's default biases_initializer (stateless, so one is shared)


def _model_variable_getter(getter, name, *args, **kwargs):
    """contrib layers rename the core layers' kernel/bias to weights/biases and list them as model variables."""
    prefix, _, last = name.rpartition("/")
    renamed = f"{prefix}/{_CONTRIB_NAMES.get(last, last)}" if prefix else _CONTRIB_NAMES.get(last, last)
    collections = list(kwargs.pop("collections", None) or [GraphKeys.GLOBAL_VARIABLES])
    collections.append(GraphKeys.MODEL_VARIABLES)
    return getter(renamed, *args, collections=collections, **kwargs)


def _apply(layer_class, inputs, default_scope, scope, reuse, activation_fn, normalizer_fn, normalizer_params,
           **layer_args):
    with variable_scope(scope, default_scope, [inputs], reuse=reuse, custom_getter=_model_variable_getter) as sc:
        inputs = convert_to_tensor(inputs)
        use_bias = normalizer_fn is None and layer_args["bias_initializer"] is not None
        layer = layer_class(name=sc.name, _scope=sc, _reuse=reuse, activation=None, use_bias=use_bias, **layer_args)
        outputs = layer(inputs)
        if normalizer_fn is not None:
            outputs = normalizer_fn(outputs, **(normalizer_params or {}))
        return activation_fn(outputs) if activation_fn is not None else outputs


def fully_connected(inputs, num_outputs, activation_fn=nn.relu, normalizer_fn=None, normalizer_params=None,
                    weights_initializer=None, weights_regularizer=None, biases_initializer=_ZEROS,
                    biases_regularizer=None, reuse=None, variables_collections=None, outputs_collections=None,
                    trainable=True, scope=None):
    return _apply(Dense, inputs, "fully_connected", scope, reuse, activation_fn, normalizer_fn, normalizer_params,
                  units=num_outputs, kernel_initializer=weights_initializer or xavier_initializer(),
                  kernel_regularizer=weights_regularizer, bias_initializer=biases_initializer,
                  bias_regularizer=biases_regularizer, trainable=trainable)


def conv2d(inputs, num_outputs, kernel_size, stride=1, padding="SAME", data_format=None, rate=1,
           activation_fn=nn.relu, normalizer_fn=None, normalizer_params=None, weights_initializer=None,
           weights_regularizer=None, biases_initializer=_ZEROS, biases_regularizer=None, reuse=None,
           variables_collections=None, outputs_collections=None, trainable=True, scope=None):
    if data_format not in (None, "NHWC"):
        raise ValueError(f"only data_format='NHWC' is supported, got {data_format!r}")
    return _apply(Conv2D, inputs, "Conv", scope, reuse, activation_fn, normalizer_fn, normalizer_params,
                  filters=num_outputs, kernel_size=kernel_size, strides=stride, padding=padding.lower(),
                  dilation_rate=rate, kernel_initializer=weights_initializer or xavier_initializer(),
                  kernel_regularizer=weights_regularizer, bias_initializer=biases_initializer,
                  bias_regularizer=biases_regularizer, trainable=trainable)


def flatten(inputs, outputs_collections=None, scope=None):
    with name_scope(scope, "Flatten", [inputs]):
        return Flatten()(inputs)


def xavier_initializer(uniform=True, seed=None, dtype=None):
    return VarianceScaling(1.0, "fan_avg", "uniform" if uniform else "truncated_normal", seed,
                           **({} if dtype is None else {"dtype": dtype}))


xavier_initializer_conv2d = xavier_initializer


def variance_scaling_initializer(factor=2.0, mode="FAN_IN", uniform=False, seed=None, dtype=None):
    """contrib's version: `factor` and upper-case modes; its normal is truncated with stddev sqrt(1.3 * var)."""
    mode = {"FAN_IN": "fan_in", "FAN_OUT": "fan_out", "FAN_AVG": "fan_avg"}.get(mode)
    if mode is None:
        raise TypeError("Unknown mode (expected FAN_IN, FAN_OUT or FAN_AVG)")
    kwargs = {} if dtype is None else {"dtype": dtype}
    if uniform:
        return VarianceScaling(factor, mode, "uniform", seed, **kwargs)
    # VarianceScaling's truncated normal has stddev sqrt(scale / n) / 0.8796...; contrib's is sqrt(1.3 * factor / n)
    return VarianceScaling(factor * 1.3 * TRUNCATED_STDDEV ** 2, mode, "truncated_normal", seed, **kwargs)


def _check_scale(scale):
    if isinstance(scale, numbers.Integral):
        raise ValueError(f"scale cannot be an integer: {scale}")
    if isinstance(scale, numbers.Real) and scale < 0.0:
        raise ValueError(f"Setting a scale less than 0 on a regularizer: {scale}")
    return isinstance(scale, numbers.Real) and scale == 0.0


def l2_regularizer(scale, scope=None):
    """weights -> scale * sum(weights ** 2) / 2 (None when scale is 0)."""
    if _check_scale(scale):
        return lambda _: None

    def l2(weights):
        with name_scope(scope, "l2_regularizer", [weights]) as name:
            my_scale = convert_to_tensor(scale, dtype=weights.dtype, name="scale")
            return multiply(my_scale, nn.l2_loss(weights), name=name)

    return l2


def l1_regularizer(scale, scope=None):
    """weights -> scale * sum(|weights|) (None when scale is 0)."""
    if _check_scale(scale):
        return lambda _: None

    def l1(weights):
        with name_scope(scope, "l1_regularizer", [weights]) as name:
            my_scale = convert_to_tensor(scale, dtype=weights.dtype, name="scale")
            return multiply(my_scale, reduce_sum(tf_abs(weights)), name=name)

    return l1
