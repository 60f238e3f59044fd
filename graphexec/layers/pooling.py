"""tf.layers max and average pooling in 1-D and 2-D (channels_last), with their functional forms."""
from __future__ import annotations

from graphexec import nn
from graphexec.layers.base import Layer
from graphexec.layers.convolutional import _check_data_format, as_tuple
from graphexec.ops.array_ops import expand_dims, squeeze
from graphexec.ops.convert import convert_to_tensor


class _Pooling(Layer):
    rank = 2
    pool = staticmethod(nn.max_pool)

    def __init__(self, pool_size, strides, padding="valid", data_format="channels_last", name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        _check_data_format(data_format)
        self.pool_size = as_tuple(pool_size, self.rank, "pool_size")
        self.strides = as_tuple(strides if strides is not None else pool_size, self.rank, "strides")
        self.padding = padding.upper()

    def call(self, inputs):
        inputs = convert_to_tensor(inputs)
        if self.rank == 1:  # pooled as a 2-D image of width 1
            pooled = type(self).pool(expand_dims(inputs, 2), ksize=[1, self.pool_size[0], 1, 1],
                                     strides=[1, self.strides[0], 1, 1], padding=self.padding)
            return squeeze(pooled, [2])
        return type(self).pool(inputs, ksize=[1, *self.pool_size, 1], strides=[1, *self.strides, 1],
                               padding=self.padding)


class MaxPooling2D(_Pooling):
    pass


class AveragePooling2D(_Pooling):
    pool = staticmethod(nn.avg_pool)


class MaxPooling1D(_Pooling):
    rank = 1


class AveragePooling1D(_Pooling):
    rank = 1
    pool = staticmethod(nn.avg_pool)


def _functional(layer_class):
    def build_and_call(inputs, pool_size, strides, padding="valid", data_format="channels_last", name=None):
        return layer_class(pool_size, strides, padding=padding, data_format=data_format, name=name)(inputs)

    return build_and_call


max_pooling1d = _functional(MaxPooling1D)
max_pooling2d = _functional(MaxPooling2D)
average_pooling1d = _functional(AveragePooling1D)
average_pooling2d = _functional(AveragePooling2D)
