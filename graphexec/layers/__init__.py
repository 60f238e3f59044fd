"""tf.layers: TF1's layers (tf.compat.v1.layers), classes and functional forms."""
from graphexec import api_gaps
from graphexec.layers.base import Layer
from graphexec.layers.convolutional import Conv1D, Conv2D, Conv2DTranspose, conv1d, conv2d, conv2d_transpose
from graphexec.layers.core import Dense, Dropout, Flatten, dense, dropout, flatten
from graphexec.layers.normalization import BatchNormalization, batch_normalization
from graphexec.layers.pooling import (AveragePooling1D, AveragePooling2D, MaxPooling1D, MaxPooling2D,
                                      average_pooling1d, average_pooling2d, max_pooling1d, max_pooling2d)

Convolution1D, Convolution2D, Convolution2DTranspose = Conv1D, Conv2D, Conv2DTranspose
Deconvolution2D = Conv2DTranspose
MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D = MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D

__all__ = ["Layer", "Dense", "Dropout", "Flatten", "Conv1D", "Conv2D", "Conv2DTranspose", "MaxPooling1D",
           "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "BatchNormalization", "dense", "dropout",
           "flatten", "conv1d", "conv2d", "conv2d_transpose", "max_pooling1d", "max_pooling2d", "average_pooling1d",
           "average_pooling2d", "batch_normalization"]

__getattr__ = api_gaps.missing_names("layers", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
