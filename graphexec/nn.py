"""tf.nn: activations, softmax and cross-entropies, convolution and pooling, dropout, moments and batch
normalization.

Fused ops (relu, softmax, log_softmax, the softmax cross-entropies, conv2d, pooling) are declared in
graphexec.ops.nn_ops; the rest are compositions of primitives, as in TF, and differentiate through
them. Every cross-entropy is stable for large logits (no exp of a large positive number).
"""
from __future__ import annotations

import numpy as np

from graphexec import api_gaps
from graphexec.framework import Tensor, apply_op, name_scope
from graphexec.ops import conv_ops, math_ops, nn_ops, pool_ops  # noqa: F401 - registers the fused, conv and pool ops
from graphexec.ops.array_ops import expand_dims, shape, squeeze, stop_gradient, transpose
from graphexec.ops.convert import convert_pair, convert_to_tensor
from graphexec.ops.random_ops import random_uniform
from graphexec.ops.math_ops import (abs, add, cast, exp, greater, greater_equal, log1p, maximum, minimum,  # noqa: A004
                                    multiply, rsqrt, sigmoid, square, subtract, tanh, truediv, where)
from graphexec.ops.random_ops import log_uniform_candidate_sampler, uniform_candidate_sampler
from graphexec.ops.reduction_ops import reduce_mean, reduce_prod, reduce_sum
from graphexec.ops.nn_ops import *  # noqa: F401,F403 - its __all__ is part of tf.nn
from graphexec.nn_sampled import (compute_accidental_hits, embedding_lookup, nce_loss,  # noqa: F401
                                  sampled_softmax_loss)

__all__ = ["relu", "relu6", "elu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax",
           "softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
           "sparse_softmax_cross_entropy_with_logits", "sigmoid_cross_entropy_with_logits", "l2_loss", "bias_add",
           "dropout", "conv2d", "max_pool", "avg_pool", "moments", "batch_normalization", "xw_plus_b",
           *nn_ops.__all__, "rnn_cell", "dynamic_rnn", "static_rnn", "bidirectional_dynamic_rnn",
           "static_bidirectional_rnn"]


# -- activations ------------------------------------------------------------------------------------------------
def relu(features, name=None):
    return apply_op("Relu", (convert_to_tensor(features),), {}, name or "Relu").outputs[0]


def relu6(features, name=None):
    features = convert_to_tensor(features)
    with name_scope(name, "Relu6") as scope:
        return minimum(relu(features), 6, name=scope)


def elu(features, name=None):
    """x for x > 0, exp(x) - 1 otherwise (exp of min(x, 0), so large x never overflows)."""
    features = convert_to_tensor(features)
    with name_scope(name, "Elu") as scope:
        negative_part = subtract(exp(minimum(features, 0)), 1)
        return where(greater(features, 0), features, negative_part, name=scope)


def leaky_relu(features, alpha=0.2, name=None):
    features = convert_to_tensor(features)
    with name_scope(name, "LeakyRelu") as scope:
        if alpha <= 1:
            return maximum(features, multiply(features, alpha), name=scope)
        return where(greater(features, 0), features, multiply(features, alpha), name=scope)


# -- softmax ------------------------------------------------------------------------------------------------------
def _softmax_like(op_type, logits, axis, name, dim):
    logits = convert_to_tensor(logits)
    axis = -1 if axis is None and dim is None else (dim if axis is None else axis)
    return apply_op(op_type, (logits,), {"axis": int(axis)}, name or op_type).outputs[0]


def softmax(logits, axis=None, name=None, dim=None):
    return _softmax_like("Softmax", logits, axis, name, dim)


def log_softmax(logits, axis=None, name=None, dim=None):
    return _softmax_like("LogSoftmax", logits, axis, name, dim)


def _classes_last(t: Tensor, axis: int) -> Tensor:
    """Move the class axis last, where the fused cross-entropy kernels expect it."""
    rank = t.shape.ndims
    if axis in (-1, None) or (rank is not None and axis == rank - 1):
        return t
    if rank is None:
        raise ValueError("the class axis must be last when the rank of logits is unknown")
    axis %= rank
    return transpose(t, [d for d in range(rank) if d != axis] + [axis])


def softmax_cross_entropy_with_logits_v2(labels=None, logits=None, axis=-1, name=None, dim=None):
    """-sum(labels * log_softmax(logits)) over the class axis; differentiable in labels too."""
    if labels is None or logits is None:
        raise ValueError("Both labels= and logits= must be given")
    axis = dim if dim is not None else axis
    logits = convert_to_tensor(logits)
    labels = convert_to_tensor(labels, dtype=logits.dtype)
    with name_scope(name, "softmax_cross_entropy_with_logits") as scope:
        op = apply_op("SoftmaxCrossEntropyWithLogits", (_classes_last(logits, axis), _classes_last(labels, axis)),
                      {}, scope)
        return op.outputs[0]


def softmax_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, dim=-1, name=None, axis=None):
    """TF1's version: as _v2 but no gradient flows into labels."""
    if _sentinel is not None:
        raise ValueError("Only call softmax_cross_entropy_with_logits with named arguments (labels=..., logits=...)")
    if labels is None or logits is None:
        raise ValueError("Both labels= and logits= must be given")
    logits = convert_to_tensor(logits)
    labels = stop_gradient(convert_to_tensor(labels, dtype=logits.dtype))
    return softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits, axis=dim if axis is None else axis,
                                                name=name)


def sparse_softmax_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, name=None):
    """-log_softmax(logits)[label] per example; labels are class indices (int32/int64)."""
    if _sentinel is not None:
        raise ValueError("Only call sparse_softmax_cross_entropy_with_logits with named arguments")
    if labels is None or logits is None:
        raise ValueError("Both labels= and logits= must be given")
    logits, labels = convert_to_tensor(logits), convert_to_tensor(labels)
    with name_scope(name, "SparseSoftmaxCrossEntropyWithLogits") as scope:
        return apply_op("SparseSoftmaxCrossEntropyWithLogits", (logits, labels), {}, scope).outputs[0]


def sigmoid_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, name=None):
    """max(x, 0) - x * z + log(1 + exp(-|x|)): TF's formulation, stable for any logit x."""
    if _sentinel is not None:
        raise ValueError("Only call sigmoid_cross_entropy_with_logits with named arguments")
    if labels is None or logits is None:
        raise ValueError("Both labels= and logits= must be given")
    logits = convert_to_tensor(logits)
    labels = convert_to_tensor(labels, dtype=logits.dtype)
    with name_scope(name, "logistic_loss") as scope:
        return add(subtract(relu(logits), multiply(logits, labels)), log1p(exp(-abs(logits))), name=scope)


# -- small helpers ------------------------------------------------------------------------------------------------
def l2_loss(t, name=None):
    """sum(t ** 2) / 2."""
    t = convert_to_tensor(t)
    with name_scope(name, "L2Loss") as scope:
        return multiply(reduce_sum(square(t)), 0.5, name=scope)


def bias_add(value, bias, data_format=None, name=None):
    value, bias = convert_pair(value, bias)
    if data_format not in (None, "NHWC", "N...C"):
        raise ValueError(f"bias_add supports channels-last data only, got data_format={data_format!r}")
    if bias.shape.ndims not in (None, 1):
        raise ValueError(f"bias must be 1-D, got shape {bias.shape}")
    channels, width = value.shape.dims[-1] if value.shape.ndims else None, bias.shape.dims
    if channels is not None and width is not None and width[0] not in (None, channels):
        raise ValueError(f"bias of size {width[0]} does not match the last dimension of value {value.shape}")
    return add(value, bias, name=name or "BiasAdd")


def xw_plus_b(x, weights, biases, name=None):
    with name_scope(name, "xw_plus_b") as scope:
        return bias_add(math_ops.matmul(x, weights), biases, name=scope)


def dropout(x, keep_prob=None, noise_shape=None, seed=None, name=None, rate=None):
    """Zero each element with probability `rate` (= 1 - keep_prob) and scale the rest by 1 / keep_prob.

    The mask comes from random_uniform with `seed` (and the graph seed), so it is reproducible.
    keep_prob may be a tensor (a placeholder fed 1.0 at test time, as in TF1 programs).
    """
    if (keep_prob is None) == (rate is None):
        raise ValueError("dropout needs exactly one of keep_prob= and rate=")
    x = convert_to_tensor(x)
    with name_scope(name, "dropout") as scope:
        if keep_prob is not None:
            if isinstance(keep_prob, (int, float)) and not 0 < keep_prob <= 1:
                raise ValueError(f"keep_prob must be a scalar tensor or a float in the range (0, 1], got {keep_prob}")
            keep = convert_to_tensor(keep_prob, dtype=x.dtype)
        else:
            if isinstance(rate, (int, float)) and not 0 <= rate < 1:
                raise ValueError(f"rate must be a scalar tensor or a float in the range [0, 1), got {rate}")
            keep = subtract(1, convert_to_tensor(rate, dtype=x.dtype))
        noise = shape(x) if noise_shape is None else noise_shape
        uniform = random_uniform(noise, dtype=x.dtype, seed=seed)
        kept = cast(greater_equal(uniform, subtract(1, keep)), x.dtype)
        return multiply(truediv(x, keep), kept, name=scope)


# -- convolution and pooling --------------------------------------------------------------------------------------
def _four(value, what) -> tuple:
    """strides/ksize as TF's [1, h, w, 1] from an int, a pair or a 4-list."""
    if isinstance(value, (int, np.integer)):
        return (1, int(value), int(value), 1)
    value = [int(v) for v in value]
    if len(value) == 1:
        return (1, value[0], value[0], 1)
    if len(value) == 2:
        return (1, value[0], value[1], 1)
    if len(value) == 4:
        return tuple(value)
    raise ValueError(f"{what} must be an int or a list of 1, 2 or 4 ints, got {value}")


def conv2d(input=None, filter=None, strides=None, padding=None, use_cudnn_on_gpu=True, data_format="NHWC",  # noqa: A002
           dilations=None, name=None, filters=None):
    """2-D convolution of NHWC `input` with an [h, w, in, out] filter; padding "SAME" or "VALID"."""
    filter = filters if filter is None else filter  # noqa: A001
    if input is None or filter is None or strides is None or padding is None:
        raise ValueError("conv2d needs input, filter, strides and padding")
    if dilations is not None and _four(dilations, "dilations") != (1, 1, 1, 1):
        raise NotImplementedError("dilated convolution is not supported")
    x = convert_to_tensor(input)
    w = convert_to_tensor(filter, dtype=x.dtype)
    attrs = {"strides": _four(strides, "strides"), "padding": str(padding).upper(), "data_format": data_format}
    return apply_op("Conv2D", (x, w), attrs, name or "Conv2D").outputs[0]


def conv2d_transpose(value=None, filter=None, output_shape=None, strides=None, padding="SAME",  # noqa: A002
                     data_format="NHWC", name=None, input=None, filters=None, dilations=None):  # noqa: A002
    """The adjoint of conv2d (its gradient with respect to the input): `filter` is [h, w, out, in] and
    `output_shape` the [batch, height, width, out] of the result."""
    value = input if value is None else value
    filter = filters if filter is None else filter  # noqa: A001
    if value is None or filter is None or output_shape is None or strides is None:
        raise ValueError("conv2d_transpose needs value, filter, output_shape and strides")
    if dilations is not None and _four(dilations, "dilations") != (1, 1, 1, 1):
        raise NotImplementedError("dilated convolution is not supported")
    x = convert_to_tensor(value)
    w = convert_to_tensor(filter, dtype=x.dtype)
    sizes = convert_to_tensor(output_shape, dtype="int32")
    attrs = {"strides": _four(strides, "strides"), "padding": str(padding).upper(), "data_format": data_format}
    with name_scope(name, "conv2d_transpose") as scope:
        return apply_op("Conv2DBackpropInput", (sizes, w, x), attrs, scope).outputs[0]


def conv1d(value=None, filters=None, stride=None, padding=None, use_cudnn_on_gpu=None, data_format="NWC",
           name=None, input=None, dilations=None):  # noqa: A002
    """1-D convolution of [batch, width, in] with a [width, in, out] filter, as a conv2d of height 1."""
    value = input if value is None else value
    if data_format not in ("NWC", "NHWC", None):
        raise ValueError(f"conv1d supports the NWC data format only, got {data_format!r}")
    stride = stride[0] if isinstance(stride, (list, tuple)) and len(stride) == 1 else stride
    stride = stride[1] if isinstance(stride, (list, tuple)) else stride
    with name_scope(name, "conv1d") as scope:
        x = expand_dims(convert_to_tensor(value), 1)
        w = expand_dims(convert_to_tensor(filters, dtype=x.dtype), 0)
        return squeeze(conv2d(x, w, strides=[1, 1, int(stride), 1], padding=padding), [1], name=scope)


__all__ += ["conv2d_transpose", "conv1d"]


def _pool(op_type, value, ksize, strides, padding, data_format, name):
    attrs = {"ksize": _four(ksize, "ksize"), "strides": _four(strides, "strides"), "padding": str(padding).upper(),
             "data_format": data_format}
    return apply_op(op_type, (convert_to_tensor(value),), attrs, name or op_type).outputs[0]


def max_pool(value=None, ksize=None, strides=None, padding=None, data_format="NHWC", name=None,
             input=None):  # noqa: A002 - TF's name
    return _pool("MaxPool", value if value is not None else input, ksize, strides, padding, data_format, name)


def avg_pool(value=None, ksize=None, strides=None, padding=None, data_format="NHWC", name=None,
             input=None):  # noqa: A002 - TF's name
    return _pool("AvgPool", value if value is not None else input, ksize, strides, padding, data_format, name)


# -- normalization ------------------------------------------------------------------------------------------------
def moments(x, axes, shift=None, name=None, keep_dims=None, keepdims=None):
    """(mean, variance) over `axes`; the variance uses the mean as a constant, as TF does."""
    x = convert_to_tensor(x)
    keep = bool(keepdims if keepdims is not None else keep_dims)
    axes = [int(a) for a in (axes if isinstance(axes, (list, tuple)) else [axes])]
    with name_scope(name, "moments"):
        mean = reduce_mean(x, axis=axes, keepdims=True, name="mean")
        variance = reduce_mean(square(subtract(x, stop_gradient(mean))), axis=axes, keepdims=True,
                               name="variance")
        if not keep:
            mean, variance = squeeze(mean, axes), squeeze(variance, axes)
        return mean, variance


def batch_normalization(x, mean, variance, offset, scale, variance_epsilon, name=None):
    """(x - mean) / sqrt(variance + eps) * scale + offset, computed as x * inv + (offset - mean * inv)."""
    x = convert_to_tensor(x)
    with name_scope(name, "batchnorm") as scope:
        inv = rsqrt(add(convert_to_tensor(variance, dtype=x.dtype), variance_epsilon))
        if scale is not None:
            inv = multiply(inv, convert_to_tensor(scale, dtype=x.dtype))
        shifted = -multiply(convert_to_tensor(mean, dtype=x.dtype), inv)
        if offset is not None:
            shifted = add(shifted, convert_to_tensor(offset, dtype=x.dtype))
        return add(multiply(x, inv), shifted, name=scope)


# -- more activations, normalizations and cross-entropies (TF1's compositions) ------------------------------------
__all__ += ["selu", "softplus", "softsign", "swish", "silu", "l2_normalize", "weighted_cross_entropy_with_logits",
            "fused_batch_norm", "log_uniform_candidate_sampler", "uniform_candidate_sampler", "embedding_lookup",
            "nce_loss", "sampled_softmax_loss", "compute_accidental_hits"]

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def selu(features, name=None):
    features = convert_to_tensor(features)
    with name_scope(name, "Selu") as scope:
        return multiply(where(greater(features, 0), features, multiply(elu(features), SELU_ALPHA)), SELU_SCALE,
                        name=scope)


def softplus(features, name=None):
    """log(1 + exp(x)) as max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|."""
    features = convert_to_tensor(features)
    with name_scope(name, "Softplus") as scope:
        return add(relu(features), log1p(exp(-abs(features))), name=scope)


def softsign(features, name=None):
    features = convert_to_tensor(features)
    with name_scope(name, "Softsign") as scope:
        return truediv(features, add(abs(features), 1), name=scope)


def swish(features, beta=1.0, name=None):
    """x * sigmoid(beta * x) (tf.nn.swish, also tf.nn.silu)."""
    features = convert_to_tensor(features)
    with name_scope(name, "swish") as scope:
        gate = sigmoid(features if beta == 1.0 else multiply(features, beta))
        return multiply(features, gate, name=scope)


silu = swish


def l2_normalize(x, axis=None, epsilon=1e-12, name=None, dim=None):
    """x / sqrt(max(sum(x ** 2, axis), epsilon))."""
    x = convert_to_tensor(x)
    axis = dim if axis is None else axis
    with name_scope(name, "l2_normalize") as scope:
        squares = reduce_sum(square(x), axis=axis, keepdims=True)
        return multiply(x, rsqrt(maximum(squares, epsilon)), name=scope)


def weighted_cross_entropy_with_logits(labels=None, logits=None, pos_weight=None, name=None, targets=None):
    """Sigmoid cross-entropy with positives weighted by pos_weight, as TF's stable formulation:
    (1 - z) * x + (1 + (q - 1) * z) * (log1p(exp(-|x|)) + max(-x, 0))."""
    labels = targets if labels is None else labels
    if labels is None or logits is None or pos_weight is None:
        raise ValueError("weighted_cross_entropy_with_logits needs labels, logits and pos_weight")
    logits = convert_to_tensor(logits)
    labels = convert_to_tensor(labels, dtype=logits.dtype)
    with name_scope(name, "logistic_loss") as scope:
        log_weight = add(multiply(subtract(convert_to_tensor(pos_weight, dtype=logits.dtype), 1), labels), 1)
        tail = add(log1p(exp(-abs(logits))), relu(-logits))
        return add(multiply(subtract(1, labels), logits), multiply(log_weight, tail), name=scope)


def fused_batch_norm(x, scale, offset, mean=None, variance=None, epsilon=0.001, data_format="NHWC",
                     is_training=True, name=None, exponential_avg_factor=1.0):
    """(y, batch mean, batch variance) of channels-last x. Training normalizes with the batch's moments
    and returns the variance with Bessel's correction (n / (n - 1)), as TF's kernel does for the moving
    averages; inference normalizes with the given mean and variance and returns them."""
    if data_format not in ("NHWC", "NDHWC"):
        raise ValueError(f"fused_batch_norm supports channels-last data only, got data_format={data_format!r}")
    if exponential_avg_factor != 1.0:
        raise NotImplementedError("fused_batch_norm with exponential_avg_factor != 1 is not supported")
    x = convert_to_tensor(x)
    with name_scope(name, "FusedBatchNorm"):
        if not is_training:
            if mean is None or variance is None:
                raise ValueError("fused_batch_norm in inference needs mean= and variance=")
            mean, variance = convert_to_tensor(mean, dtype=x.dtype), convert_to_tensor(variance, dtype=x.dtype)
            return batch_normalization(x, mean, variance, offset, scale, epsilon), mean, variance
        axes = list(range(x.shape.ndims - 1))
        batch_mean, batch_variance = moments(x, axes)
        y = batch_normalization(x, batch_mean, batch_variance, offset, scale, epsilon)
        count = reduce_prod(cast(shape(x)[:-1], x.dtype))  # elements per channel (the batch may be unknown)
        corrected = multiply(batch_variance, truediv(count, maximum(subtract(count, 1), 1)))
        return y, batch_mean, corrected


# Last: the cells are tf.layers layers, and graphexec.layers reads this module's functions as it loads.
from graphexec import rnn_cell  # noqa: E402,F401 - tf.nn.rnn_cell
from graphexec.rnn import bidirectional_dynamic_rnn, dynamic_rnn, static_bidirectional_rnn, static_rnn  # noqa: E402,F401

__getattr__ = api_gaps.missing_names("nn", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
