"""tf.layers.Dense, Dropout and Flatten, with their functional forms."""
from __future__ import annotations

import numpy as np

from graphexec import nn
from graphexec.initializers import Zeros
from graphexec.layers.base import Layer, training_as_float
from graphexec.ops.array_ops import identity, reshape, shape as shape_of
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.joining_ops import stack
from graphexec.ops.math_ops import add, matmul, multiply, subtract


class Dense(Layer):
    """activation(inputs @ kernel + bias); inputs of rank > 2 are multiplied along their last axis."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer=None, bias_initializer=None,
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, trainable=True, name=None, **kwargs):
        super().__init__(trainable=trainable, name=name, **kwargs)
        self.units, self.activation, self.use_bias = int(units), activation, use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer if bias_initializer is not None else Zeros()
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer
        self.kernel_constraint, self.bias_constraint = kernel_constraint, bias_constraint
        self.kernel = self.bias = None

    def build(self, input_shape):
        last = input_shape.dims[-1] if input_shape.dims else None
        if last is None:
            raise ValueError("The last dimension of the inputs to `Dense` should be defined. Found `None`.")
        self.kernel = self.add_weight("kernel", [last, self.units], initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", [self.units], initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def call(self, inputs):
        inputs = convert_to_tensor(inputs, dtype=self.dtype)
        rank = inputs.shape.ndims
        if rank is not None and rank > 2:
            flat = reshape(inputs, [-1, inputs.shape.dims[-1]])
            outputs = matmul(flat, self.kernel)
            outer = [d if d is not None else shape_of(inputs)[i] for i, d in enumerate(inputs.shape.dims[:-1])]
            outputs = reshape(outputs, stack([*outer, self.units]) if None in inputs.shape.dims[:-1]
                              else [*outer, self.units])
        else:
            outputs = matmul(inputs, self.kernel)
        if self.use_bias:
            outputs = nn.bias_add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs


class Dropout(Layer):
    """Drops with probability `rate` when `training` (a Python bool or a bool tensor) is true."""

    def __init__(self, rate=0.5, noise_shape=None, seed=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.rate, self.noise_shape, self.seed = rate, noise_shape, seed

    def call(self, inputs, training=False):
        inputs = convert_to_tensor(inputs)
        if training is False or self.rate == 0:
            return identity(inputs)
        dropped = nn.dropout(inputs, rate=self.rate, noise_shape=self.noise_shape, seed=self.seed)
        flag = training_as_float(training, inputs.dtype)
        if flag is None:
            return dropped
        # a training tensor selects between both branches at run time (0/1 blend: both are finite)
        return add(multiply(dropped, flag), multiply(inputs, subtract(1.0, flag)))


class Flatten(Layer):
    """[batch, ...] -> [batch, prod(...)]."""

    def __init__(self, data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, inputs):
        inputs = convert_to_tensor(inputs)
        dims = inputs.shape.dims
        if dims is not None and None not in dims[1:]:
            return reshape(inputs, [-1 if dims[0] is None else dims[0], int(np.prod(dims[1:], dtype=np.int64))])
        return reshape(inputs, stack([shape_of(inputs)[0], -1]))


def dense(inputs, units, activation=None, use_bias=True, kernel_initializer=None, bias_initializer=None,
          kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
          bias_constraint=None, trainable=True, name=None, reuse=None):
    layer = Dense(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                  bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                  bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                  bias_constraint=bias_constraint, trainable=trainable, name=name, _scope=name, _reuse=reuse)
    return layer(inputs)


def dropout(inputs, rate=0.5, noise_shape=None, seed=None, training=False, name=None):
    return Dropout(rate, noise_shape=noise_shape, seed=seed, name=name)(inputs, training=training)


def flatten(inputs, name=None, data_format="channels_last"):
    return Flatten(name=name, data_format=data_format)(inputs)
