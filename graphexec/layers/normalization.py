"""tf.layers.BatchNormalization and its functional form.

In training, batch statistics normalize and the moving mean and variance move toward them through
AssignSub ops that the layer lists in `updates` and adds to tf.GraphKeys.UPDATE_OPS (run them with the
train op, as TF1 programs do). As TF's fused kernel (used for 4-D inputs), the moving variance of a 4-D
input moves toward the unbiased batch variance; other inputs use the biased one, as TF does.
"""
from __future__ import annotations

from graphexec import nn
from graphexec.framework import name_scope
from graphexec.initializers import Ones, Zeros
from graphexec.layers.base import Layer, training_as_float
from graphexec.ops.array_ops import reshape, size
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.math_ops import add, cast, divide, multiply, subtract
from graphexec.variables import assign_sub


class BatchNormalization(Layer):
    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer=None,
                 gamma_initializer=None, moving_mean_initializer=None, moving_variance_initializer=None,
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 renorm=False, renorm_clipping=None, renorm_momentum=0.99, fused=None, trainable=True,
                 virtual_batch_size=None, adjustment=None, name=None, **kwargs):
        super().__init__(trainable=trainable, name=name, **kwargs)
        if renorm or virtual_batch_size is not None or adjustment is not None:
            raise NotImplementedError("batch renormalization, virtual batches and adjustment are not supported")
        if not isinstance(axis, int):
            raise NotImplementedError("batch_normalization supports one (int) axis")
        self.axis, self.momentum, self.epsilon, self.center, self.scale = axis, momentum, epsilon, center, scale
        self.fused = fused
        self.beta_initializer = beta_initializer or Zeros()
        self.gamma_initializer = gamma_initializer or Ones()
        self.moving_mean_initializer = moving_mean_initializer or Zeros()
        self.moving_variance_initializer = moving_variance_initializer or Ones()
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer
        self.beta_constraint, self.gamma_constraint = beta_constraint, gamma_constraint
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def build(self, input_shape):
        rank = input_shape.ndims
        if rank is None:
            raise ValueError("Input has undefined rank.")
        self._axis = self.axis % rank
        channels = input_shape.dims[self._axis]
        if channels is None:
            raise ValueError(f"Input has undefined `axis` dimension. Received input with shape {input_shape}")
        params = [channels]
        if self.scale:
            self.gamma = self.add_weight("gamma", params, initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight("beta", params, initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)
        self.moving_mean = self.add_weight("moving_mean", params, initializer=self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", params,
                                               initializer=self.moving_variance_initializer, trainable=False)
        self._rank, self._channels = rank, channels
        self._fused = rank == 4 and self._axis in (1, 3) and self.fused is not False

    def _broadcastable(self, t):
        if t is None or self._axis == self._rank - 1:
            return t
        shape = [1] * self._rank
        shape[self._axis] = self._channels
        return reshape(t, shape)

    def _moving_average_update(self, variable, value, decay):
        with name_scope(None, "AssignMovingAvg") as scope:
            delta = multiply(subtract(variable, value), decay)
            return assign_sub(variable, delta, name=scope).op  # TF1 collects update ops, not tensors

    def call(self, inputs, training=False):
        x = convert_to_tensor(inputs, dtype=self.dtype)
        gamma, beta = self._broadcastable(self.gamma), self._broadcastable(self.beta)
        moving_mean, moving_variance = (self._broadcastable(self.moving_mean),
                                        self._broadcastable(self.moving_variance))
        name = "FusedBatchNormV3" if self._fused else None  # the op TF1 names the output of a 4-D input
        if training is False:
            return nn.batch_normalization(x, moving_mean, moving_variance, beta, gamma, self.epsilon, name=name)
        axes = [a for a in range(self._rank) if a != self._axis]
        mean, variance = nn.moments(x, axes, keep_dims=self._axis != self._rank - 1)
        flag = training_as_float(training, x.dtype)
        if flag is not None:  # a training tensor: blend both statistics by the flag
            keep = subtract(1.0, flag)
            mean_used = add(multiply(mean, flag), multiply(moving_mean, keep))
            variance_used = add(multiply(variance, flag), multiply(moving_variance, keep))
        else:
            mean_used, variance_used = mean, variance
        outputs = nn.batch_normalization(x, mean_used, variance_used, beta, gamma, self.epsilon, name=name)
        update_variance = variance
        if self._fused:
            count = divide(cast(size(x), x.dtype), float(self._channels))
            update_variance = multiply(variance, divide(count, subtract(count, 1.0)))
        decay = 1.0 - self.momentum if flag is None else multiply(1.0 - self.momentum, flag)
        if self._axis != self._rank - 1:
            mean, update_variance = reshape(mean, [self._channels]), reshape(update_variance, [self._channels])
        self.add_update(self._moving_average_update(self.moving_mean, mean, decay))
        self.add_update(self._moving_average_update(self.moving_variance, update_variance, decay))
        return outputs


def batch_normalization(inputs, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                        beta_initializer=None, gamma_initializer=None, moving_mean_initializer=None,
                        moving_variance_initializer=None, beta_regularizer=None, gamma_regularizer=None,
                        beta_constraint=None, gamma_constraint=None, training=False, trainable=True, name=None,
                        reuse=None, renorm=False, renorm_clipping=None, renorm_momentum=0.99, fused=None,
                        virtual_batch_size=None, adjustment=None):
    layer = BatchNormalization(axis=axis, momentum=momentum, epsilon=epsilon, center=center, scale=scale,
                               beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
                               moving_mean_initializer=moving_mean_initializer,
                               moving_variance_initializer=moving_variance_initializer,
                               beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                               beta_constraint=beta_constraint, gamma_constraint=gamma_constraint, renorm=renorm,
                               fused=fused, trainable=trainable, virtual_batch_size=virtual_batch_size,
                               adjustment=adjustment, name=name, _scope=name, _reuse=reuse)
    return layer(inputs, training=training)
