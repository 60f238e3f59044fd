"""TF1's variable initializers (tf.zeros_initializer, tf.glorot_uniform_initializer, ...) and the
tf.initializers namespace.

An initializer is called as `init(shape, dtype=None, partition_info=None)` and returns a tensor that
builds the initial value: constants for zeros, ones and constant, seeded random ops otherwise (graphexec's
own generator: seeded runs repeat, though not TF's exact numbers).
"""
from __future__ import annotations

import math

import numpy as np

from graphexec import api_gaps
from graphexec import dtypes
from graphexec.ops import array_ops, random_ops
from graphexec.ops.convert import constant as constant_tensor
from graphexec.variables import global_variables_initializer, local_variables_initializer, variables_initializer
from graphexec.ops.control_ops import no_op

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal", "TruncatedNormal",
           "VarianceScaling", "GlorotUniform", "GlorotNormal", "Orthogonal", "zeros", "ones", "constant", "random_uniform",
           "random_normal", "truncated_normal", "variance_scaling", "glorot_uniform", "glorot_normal",
           "orthogonal", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "global_variables", "local_variables",
           "variables", "tables_initializer"]

# TF1's VarianceScaling "normal": a truncated normal whose stddev is corrected for the truncation at 2 sigma
# (the stddev of a unit normal truncated to [-2, 2]).
TRUNCATED_STDDEV = 0.87962566103423978


class Initializer:
    dtype = dtypes.float32

    def __call__(self, shape, dtype=None, partition_info=None):
        raise NotImplementedError

    def get_config(self):
        return {}

    def _dtype(self, dtype):
        return dtypes.as_dtype(dtype if dtype is not None else self.dtype)


def _dims(shape):
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    return [int(d) for d in dims]


class Zeros(Initializer):
    def __init__(self, dtype=dtypes.float32):
        self.dtype = dtypes.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        return array_ops.zeros(_dims(shape), self._dtype(dtype))


class Ones(Zeros):
    def __call__(self, shape, dtype=None, partition_info=None):
        return array_ops.ones(_dims(shape), self._dtype(dtype))


class Constant(Initializer):
    """A scalar fills the shape; a list or array must have the shape's size (TF1 fills a shorter list's
    remaining entries with its last element, and so does this)."""

    def __init__(self, value=0, dtype=dtypes.float32, verify_shape=False):
        if not np.isscalar(value) and not isinstance(value, (list, tuple, np.ndarray)):
            raise TypeError(f"Invalid type for initial value: {type(value).__name__} (expected Python scalar, "
                            "list or tuple of values, or numpy.ndarray).")
        self.value, self.dtype, self.verify_shape = value, dtypes.as_dtype(dtype), verify_shape

    def __call__(self, shape, dtype=None, partition_info=None, verify_shape=None):
        dims = _dims(shape)
        dtype = self._dtype(dtype)
        array = np.asarray(self.value, dtype=dtype.np)
        size = int(np.prod(dims, dtype=np.int64))
        if array.size not in (1, size) and not (self.verify_shape or verify_shape):
            if array.size > size:
                raise TypeError(f"Too many elements provided. Needed at most {size}, but received {array.size}")
            array = np.concatenate([array.ravel(), np.full(size - array.size, array.ravel()[-1], dtype.np)])
        if (self.verify_shape or verify_shape) and list(array.shape) != dims:
            raise TypeError(f"Expected Tensor's shape: {tuple(dims)}, got {array.shape}.")
        return constant_tensor(array, dtype=dtype, shape=dims)

    def get_config(self):
        return {"value": self.value, "dtype": self.dtype.name}


class RandomUniform(Initializer):
    def __init__(self, minval=0.0, maxval=None, seed=None, dtype=dtypes.float32):
        self.minval, self.maxval, self.seed, self.dtype = minval, maxval, seed, dtypes.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        return random_ops.random_uniform(_dims(shape), self.minval, self.maxval, self._dtype(dtype), seed=self.seed)


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=1.0, seed=None, dtype=dtypes.float32):
        self.mean, self.stddev, self.seed, self.dtype = mean, stddev, seed, dtypes.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        return random_ops.random_normal(_dims(shape), self.mean, self.stddev, self._dtype(dtype), seed=self.seed)


class TruncatedNormal(RandomNormal):
    def __call__(self, shape, dtype=None, partition_info=None):
        return random_ops.truncated_normal(_dims(shape), self.mean, self.stddev, self._dtype(dtype),
                                           seed=self.seed)


class Orthogonal(Initializer):
    """A random orthogonal matrix times `gain` (the shape flattened to [prod(shape[:-1]), shape[-1]])."""

    def __init__(self, gain=1.0, seed=None, dtype=dtypes.float32):
        self.gain, self.seed, self.dtype = gain, seed, dtypes.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        dims = _dims(shape)
        if len(dims) < 2:
            raise ValueError("The tensor to initialize must be at least two-dimensional")
        return random_ops.random_orthogonal(dims, self.gain, self._dtype(dtype), seed=self.seed)


def compute_fans(dims):
    """(fan_in, fan_out) as TF: a conv kernel [h, w, in, out] has fan_in = h * w * in."""
    if not dims:
        return 1, 1
    if len(dims) == 1:
        return dims[0], dims[0]
    receptive = int(np.prod(dims[:-2])) if len(dims) > 2 else 1
    return dims[-2] * receptive, dims[-1] * receptive


class VarianceScaling(Initializer):
    """Values with variance scale / n, n being fan_in, fan_out or their mean (`mode`)."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None, dtype=dtypes.float32):
        if scale <= 0.0:
            raise ValueError("`scale` must be positive float.")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"Invalid `mode` argument: {mode}")
        distribution = distribution.lower()
        if distribution not in ("normal", "uniform", "truncated_normal", "untruncated_normal"):
            raise ValueError(f"Invalid `distribution` argument: {distribution}")
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.seed, self.dtype = seed, dtypes.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        dims, dtype = _dims(shape), self._dtype(dtype)
        fan_in, fan_out = compute_fans(dims)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution in ("normal", "truncated_normal"):
            return random_ops.truncated_normal(dims, 0.0, math.sqrt(variance) / TRUNCATED_STDDEV, dtype,
                                               seed=self.seed)
        if self.distribution == "untruncated_normal":
            return random_ops.random_normal(dims, 0.0, math.sqrt(variance), dtype, seed=self.seed)
        limit = math.sqrt(3.0 * variance)
        return random_ops.random_uniform(dims, -limit, limit, dtype, seed=self.seed)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed,
                "dtype": self.dtype.name}


class GlorotUniform(VarianceScaling):
    def __init__(self, seed=None, dtype=dtypes.float32):
        super().__init__(1.0, "fan_avg", "uniform", seed, dtype)


class GlorotNormal(VarianceScaling):
    def __init__(self, seed=None, dtype=dtypes.float32):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed, dtype)


def he_normal(seed=None):
    return VarianceScaling(2.0, "fan_in", "truncated_normal", seed)


def he_uniform(seed=None):
    return VarianceScaling(2.0, "fan_in", "uniform", seed)


def lecun_normal(seed=None):
    return VarianceScaling(1.0, "fan_in", "truncated_normal", seed)


def lecun_uniform(seed=None):
    return VarianceScaling(1.0, "fan_in", "uniform", seed)


def tables_initializer(name="init_all_tables"):
    """graphexec has no lookup tables: a no-op, so TF1 programs may still run it."""
    return no_op(name=name)


# tf.initializers.<name> spells the classes in lower case.
zeros, ones, constant = Zeros, Ones, Constant
random_uniform, random_normal, truncated_normal = RandomUniform, RandomNormal, TruncatedNormal
variance_scaling, glorot_uniform, glorot_normal = VarianceScaling, GlorotUniform, GlorotNormal
orthogonal = Orthogonal
global_variables, local_variables, variables = (global_variables_initializer, local_variables_initializer,
                                                variables_initializer)

__getattr__ = api_gaps.missing_names("initializers", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
