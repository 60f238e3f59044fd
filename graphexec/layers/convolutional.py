"""tf.layers.Conv1D, Conv2D and Conv2DTranspose (channels_last), with their functional forms."""
from __future__ import annotations

from graphexec import nn
from graphexec.initializers import Zeros
from graphexec.layers.base import Layer
from graphexec.ops.array_ops import shape as shape_of
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.joining_ops import stack


def as_tuple(value, rank, what):
    if isinstance(value, int):
        return (value,) * rank
    value = tuple(int(v) for v in value)
    if len(value) != rank:
        raise ValueError(f"The `{what}` argument must be a tuple of {rank} integers. Received: {value}")
    return value


def _check_data_format(data_format):
    if data_format not in ("channels_last", None):
        raise ValueError(f"only data_format='channels_last' is supported, got {data_format!r}")


class _Conv(Layer):
    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format="channels_last",
                 dilation_rate=1, activation=None, use_bias=True, kernel_initializer=None, bias_initializer=None,
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, trainable=True, name=None, **kwargs):
        super().__init__(trainable=trainable, name=name, **kwargs)
        _check_data_format(data_format)
        if as_tuple(dilation_rate, self.rank, "dilation_rate") != (1,) * self.rank:
            raise NotImplementedError("dilated convolution is not supported")
        self.filters = int(filters)
        self.kernel_size = as_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = as_tuple(strides, self.rank, "strides")
        self.padding = padding.upper()
        if self.padding not in ("SAME", "VALID"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        self.activation, self.use_bias = activation, use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer if bias_initializer is not None else Zeros()
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer
        self.kernel_constraint, self.bias_constraint = kernel_constraint, bias_constraint
        self.kernel = self.bias = None

    def _kernel_shape(self, channels):
        return [*self.kernel_size, channels, self.filters]

    def build(self, input_shape):
        channels = input_shape.dims[-1] if input_shape.dims else None
        if channels is None:
            raise ValueError("The channel dimension of the inputs should be defined. Found `None`.")
        self.kernel = self.add_weight("kernel", self._kernel_shape(channels), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", [self.filters], initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def _convolve(self, inputs):
        return nn.conv2d(inputs, self.kernel, strides=[1, *self.strides, 1], padding=self.padding)

    def call(self, inputs):
        outputs = self._convolve(convert_to_tensor(inputs, dtype=self.dtype))
        if self.use_bias:
            outputs = nn.bias_add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs


class Conv2D(_Conv):
    rank = 2


class Conv1D(_Conv):
    rank = 1

    def _convolve(self, inputs):
        return nn.conv1d(inputs, self.kernel, stride=self.strides[0], padding=self.padding)


def deconv_output_length(size, kernel, padding, stride):
    if size is None:
        return None
    return size * stride if padding == "SAME" else size * stride + max(kernel - stride, 0)


class Conv2DTranspose(Conv2D):
    """The transpose of Conv2D: its kernel is [h, w, filters, in_channels], and it upsamples by `strides`."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format="channels_last",
                 activation=None, use_bias=True, kernel_initializer=None, bias_initializer=None,
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, trainable=True, name=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint, trainable=trainable, name=name, **kwargs)

    def _kernel_shape(self, channels):
        return [*self.kernel_size, self.filters, channels]

    def _convolve(self, inputs):
        dims = inputs.shape.dims
        height, width = (deconv_output_length(dims[i + 1], self.kernel_size[i], self.padding, self.strides[i])
                         for i in range(2))
        batch = dims[0] if dims[0] is not None else shape_of(inputs)[0]
        sizes = [batch, height, width, self.filters]
        outputs = nn.conv2d_transpose(inputs, self.kernel, stack(sizes) if dims[0] is None else sizes,
                                      strides=[1, *self.strides, 1], padding=self.padding)
        outputs.set_shape([dims[0], height, width, self.filters])
        return outputs


def _functional(layer_class):
    def build_and_call(inputs, filters, kernel_size, strides=1, padding="valid", data_format="channels_last",
                       activation=None, use_bias=True, kernel_initializer=None, bias_initializer=None,
                       kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                       kernel_constraint=None, bias_constraint=None, trainable=True, name=None, reuse=None, **kwargs):
        layer = layer_class(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                            activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                            bias_constraint=bias_constraint, trainable=trainable, name=name, _scope=name,
                            _reuse=reuse, **kwargs)
        return layer(inputs)

    return build_and_call


conv1d = _functional(Conv1D)
conv2d = _functional(Conv2D)
conv2d_transpose = _functional(Conv2DTranspose)
