"""tf.nn.rnn_cell (and tf.contrib.rnn): TF1's recurrent cells as layers.

A cell is a `tf.layers.Layer` called as `cell(inputs, state) -> (output, new_state)`. Its variables are made
at the first call, in `variable_scope(None, default_name=<snake_case class>)` under the caller's scope, so
inside `dynamic_rnn` they are `rnn/basic_lstm_cell/kernel`, `rnn/basic_lstm_cell/bias`, as TF1's (with
TF_USE_LEGACY_KERAS=1). Gate layouts and initializers are TF1's, so weights copied from TensorFlow give the
same numbers.
"""
from __future__ import annotations

import collections
import contextlib
import numbers
import zlib

import numpy as np

from graphexec import api_gaps, dtypes
from graphexec.framework import Tensor, control_dependencies, device, get_default_graph, name_scope
from graphexec.initializers import Constant, Zeros
from graphexec.layers.base import Layer
from graphexec.ops.array_ops import shape as shape_of
from graphexec.ops.array_ops import zeros
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.indexing_ops import gather
from graphexec.ops.joining_ops import concat, split, stack
from graphexec.ops.math_ops import (add, cast, clip_by_value, greater_equal, matmul, multiply, sigmoid, subtract,
                                    tanh, truediv)
from graphexec.ops.random_ops import random_uniform
from graphexec.ops.slicing_ops import slice as slice_of
from graphexec.ops.structure import flatten, pack_sequence_as
from graphexec.variable_scope import variable_scope

__all__ = ["RNNCell", "BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell", "MultiRNNCell", "DropoutWrapper",
           "ResidualWrapper", "DeviceWrapper", "LSTMStateTuple"]


class LSTMStateTuple(collections.namedtuple("LSTMStateTuple", ("c", "h"))):
    """An LSTM's state: the cell `c` and the output `h`."""
    __slots__ = ()

    @property
    def dtype(self):
        c, h = self
        if c.dtype != h.dtype:
            raise TypeError(f"Inconsistent internal state: {c.dtype} vs {h.dtype}")
        return c.dtype


def _last_dim(input_shape, cell) -> int:
    depth = input_shape.dims[-1] if input_shape.dims else None
    if depth is None:
        raise ValueError(f"Expected inputs.shape[-1] to be known, saw shape: {input_shape}")
    return int(depth)


def _zeros_for(size, batch_size, dtype):
    """Zeros of [batch_size, n] for every leaf n of the state_size structure `size`."""
    def one(n):
        if isinstance(batch_size, Tensor):
            return zeros(stack([batch_size, int(n)]), dtype=dtype)
        return zeros([int(batch_size), int(n)], dtype=dtype)

    return pack_sequence_as(size, [one(n) for n in flatten(size)])


class RNNCell(Layer):
    """Base of the cells: subclasses give `state_size`, `output_size`, `build` and `call(inputs, state)`."""

    def __call__(self, inputs, state, scope=None):
        return super().__call__(inputs, state, scope=scope)

    @property
    def state_size(self):
        raise NotImplementedError("Abstract method")

    @property
    def output_size(self):
        raise NotImplementedError("Abstract method")

    def zero_state(self, batch_size, dtype):
        with name_scope(f"{type(self).__name__}ZeroState", values=None):
            return _zeros_for(self.state_size, batch_size, dtypes.as_dtype(dtype))

    def get_initial_state(self, inputs=None, batch_size=None, dtype=None):
        if inputs is not None:
            inputs = convert_to_tensor(inputs)
            batch_size, dtype = shape_of(inputs)[0], dtype or inputs.dtype
        return self.zero_state(batch_size, dtype)


class BasicRNNCell(RNNCell):
    """output = new_state = activation([inputs, state] @ kernel + bias)."""

    def __init__(self, num_units, activation=None, reuse=None, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, _reuse=reuse, **kwargs)
        self._num_units, self._activation = int(num_units), activation or tanh

    state_size = property(lambda self: self._num_units)
    output_size = property(lambda self: self._num_units)

    def build(self, inputs_shape):
        depth = _last_dim(inputs_shape, self)
        self._kernel = self.add_weight("kernel", [depth + self._num_units, self._num_units])
        self._bias = self.add_weight("bias", [self._num_units], initializer=Zeros())
        self.built = True

    def call(self, inputs, state):
        output = self._activation(add(matmul(concat([inputs, state], 1), self._kernel), self._bias))
        return output, output


def _split_state(state, state_is_tuple, units):
    if state_is_tuple:
        return state
    return slice_of(state, [0, 0], [-1, units[0]]), slice_of(state, [0, units[0]], [-1, units[1]])


class BasicLSTMCell(RNNCell):
    """TF1's basic LSTM: gates i, j, f, o from one kernel; `forget_bias` is added to f; no peepholes."""

    def __init__(self, num_units, forget_bias=1.0, state_is_tuple=True, activation=None, reuse=None, name=None,
                 dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, _reuse=reuse, **kwargs)
        self._num_units, self._forget_bias = int(num_units), float(forget_bias)
        self._state_is_tuple, self._activation = state_is_tuple, activation or tanh

    @property
    def state_size(self):
        n = self._num_units
        return LSTMStateTuple(n, n) if self._state_is_tuple else 2 * n

    output_size = property(lambda self: self._num_units)

    def build(self, inputs_shape):
        depth = _last_dim(inputs_shape, self)
        self._kernel = self.add_weight("kernel", [depth + self._num_units, 4 * self._num_units])
        self._bias = self.add_weight("bias", [4 * self._num_units], initializer=Zeros())
        self.built = True

    def call(self, inputs, state):
        c, h = _split_state(state, self._state_is_tuple, (self._num_units, self._num_units))
        gates = add(matmul(concat([inputs, h], 1), self._kernel), self._bias)
        i, j, f, o = split(gates, 4, axis=1)
        new_c = add(multiply(c, sigmoid(add(f, self._forget_bias))), multiply(sigmoid(i), self._activation(j)))
        new_h = multiply(self._activation(new_c), sigmoid(o))
        new_state = LSTMStateTuple(new_c, new_h) if self._state_is_tuple else concat([new_c, new_h], 1)
        return new_h, new_state


class LSTMCell(RNNCell):
    """TF1's LSTMCell: BasicLSTMCell's gates plus optional peepholes (w_f_diag, w_i_diag, w_o_diag), a cell
    clip, and a projection of the output to `num_proj` units (`projection/kernel`, clipped by `proj_clip`)."""

    def __init__(self, num_units, use_peepholes=False, cell_clip=None, initializer=None, num_proj=None,
                 proj_clip=None, num_unit_shards=None, num_proj_shards=None, forget_bias=1.0, state_is_tuple=True,
                 activation=None, reuse=None, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, _reuse=reuse, **kwargs)
        self._num_units, self._use_peepholes, self._cell_clip = int(num_units), use_peepholes, cell_clip
        self._initializer, self._num_proj, self._proj_clip = initializer, num_proj, proj_clip
        self._forget_bias, self._state_is_tuple = float(forget_bias), state_is_tuple
        self._activation = activation or tanh

    @property
    def state_size(self):
        out = self._num_proj or self._num_units
        return LSTMStateTuple(self._num_units, out) if self._state_is_tuple else self._num_units + out

    output_size = property(lambda self: self._num_proj or self._num_units)

    def build(self, inputs_shape):
        depth, n = _last_dim(inputs_shape, self), self._num_units
        self._kernel = self.add_weight("kernel", [depth + (self._num_proj or n), 4 * n], initializer=self._initializer)
        self._bias = self.add_weight("bias", [4 * n], initializer=Zeros())
        if self._use_peepholes:
            self._w_f_diag, self._w_i_diag, self._w_o_diag = (
                self.add_weight(name, [n], initializer=self._initializer)
                for name in ("w_f_diag", "w_i_diag", "w_o_diag"))
        if self._num_proj is not None:
            self._proj_kernel = self.add_weight("projection/kernel", [n, self._num_proj],
                                                initializer=self._initializer)
        self.built = True

    def call(self, inputs, state):
        c_prev, m_prev = _split_state(state, self._state_is_tuple,
                                      (self._num_units, self._num_proj or self._num_units))
        gates = add(matmul(concat([inputs, m_prev], 1), self._kernel), self._bias)
        i, j, f, o = split(gates, 4, axis=1)
        if self._use_peepholes:
            f = add(f, multiply(self._w_f_diag, c_prev))
            i = add(i, multiply(self._w_i_diag, c_prev))
        c = add(multiply(sigmoid(add(f, self._forget_bias)), c_prev), multiply(sigmoid(i), self._activation(j)))
        if self._cell_clip is not None:
            c = clip_by_value(c, -self._cell_clip, self._cell_clip)
        if self._use_peepholes:
            o = add(o, multiply(self._w_o_diag, c))
        m = multiply(sigmoid(o), self._activation(c))
        if self._num_proj is not None:
            m = matmul(m, self._proj_kernel)
            if self._proj_clip is not None:
                m = clip_by_value(m, -self._proj_clip, self._proj_clip)
        return m, (LSTMStateTuple(c, m) if self._state_is_tuple else concat([c, m], 1))


class GRUCell(RNNCell):
    """TF1's GRU: reset and update gates (`gates/kernel`, bias starting at 1.0), then the candidate
    (`candidate/kernel`) from the inputs and the reset state; new_h = u * h + (1 - u) * candidate."""

    def __init__(self, num_units, activation=None, reuse=None, kernel_initializer=None, bias_initializer=None,
                 name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, _reuse=reuse, **kwargs)
        self._num_units, self._activation = int(num_units), activation or tanh
        self._kernel_initializer, self._bias_initializer = kernel_initializer, bias_initializer

    state_size = property(lambda self: self._num_units)
    output_size = property(lambda self: self._num_units)

    def build(self, inputs_shape):
        depth, n = _last_dim(inputs_shape, self), self._num_units
        self._gate_kernel = self.add_weight("gates/kernel", [depth + n, 2 * n], initializer=self._kernel_initializer)
        self._gate_bias = self.add_weight("gates/bias", [2 * n], initializer=self._bias_initializer
                                          if self._bias_initializer is not None else Constant(1.0))
        self._candidate_kernel = self.add_weight("candidate/kernel", [depth + n, n],
                                                 initializer=self._kernel_initializer)
        self._candidate_bias = self.add_weight("candidate/bias", [n], initializer=self._bias_initializer
                                               if self._bias_initializer is not None else Zeros())
        self.built = True

    def call(self, inputs, state):
        gates = sigmoid(add(matmul(concat([inputs, state], 1), self._gate_kernel), self._gate_bias))
        r, u = split(gates, 2, axis=1)
        candidate = add(matmul(concat([inputs, multiply(r, state)], 1), self._candidate_kernel),
                        self._candidate_bias)
        c = self._activation(candidate)
        new_h = add(multiply(u, state), multiply(1.0 - u, c))
        return new_h, new_h


class MultiRNNCell(RNNCell):
    """Cells stacked: cell i runs in variable scope `cell_i` on the output of cell i - 1."""

    def __init__(self, cells, state_is_tuple=True):
        super().__init__()
        if not cells:
            raise ValueError("Must specify at least one cell for MultiRNNCell.")
        self._cells, self._state_is_tuple = list(cells), state_is_tuple

    @property
    def state_size(self):
        if self._state_is_tuple:
            return tuple(cell.state_size for cell in self._cells)
        return sum(int(np.sum(flatten(cell.state_size))) for cell in self._cells)

    output_size = property(lambda self: self._cells[-1].output_size)

    def zero_state(self, batch_size, dtype):
        with name_scope(f"{type(self).__name__}ZeroState", values=None):
            if self._state_is_tuple:
                return tuple(cell.zero_state(batch_size, dtype) for cell in self._cells)
            return _zeros_for(self.state_size, batch_size, dtypes.as_dtype(dtype))

    def build(self, inputs_shape):
        self.built = True  # each cell builds at its own first call

    def call(self, inputs, state):
        output, new_states, start = inputs, [], 0
        for i, cell in enumerate(self._cells):
            with variable_scope(f"cell_{i}"):
                if self._state_is_tuple:
                    cell_state = state[i]
                else:
                    size = int(np.sum(flatten(cell.state_size)))
                    cell_state = slice_of(state, [0, start], [-1, size])
                    start += size
                output, new_state = cell(output, cell_state)
                new_states.append(new_state)
        return output, (tuple(new_states) if self._state_is_tuple else concat(new_states, 1))


class _Wrapper(RNNCell):
    """A cell around `cell`: its variables stay the wrapped cell's (no scope of the wrapper's own)."""

    def __init__(self, cell, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.cell = cell

    state_size = property(lambda self: self.cell.state_size)
    output_size = property(lambda self: self.cell.output_size)

    def zero_state(self, batch_size, dtype):
        return self.cell.zero_state(batch_size, dtype)

    def __call__(self, inputs, state, scope=None):
        return self.call(convert_to_tensor(inputs), state, scope)


def _keep_all(keep_prob) -> bool:
    return isinstance(keep_prob, numbers.Real) and float(keep_prob) == 1.0


class LoopStep:
    """The dynamic_rnn step being traced (`time` inside the loop; `steps`, `batch_size` and the function
    `outside` it from before the loop). DropoutWrapper draws its noise for every step at once outside the
    loop and reads this step's row: the loop's gradient, which recomputes the body, then sees the masks
    the forward pass used."""

    def __init__(self, time, steps, batch_size, outside):
        self.time, self.steps, self.batch_size, self.outside = time, steps, batch_size, outside

    def uniform(self, like: Tensor, seed) -> Tensor | None:
        dims = like.shape.dims
        if dims is None or None in dims[1:]:
            return None
        building_outside = self.outside.entered() if self.outside is not None else control_dependencies(None)
        with building_outside:
            noise = random_uniform(stack([self.steps, self.batch_size, *dims[1:]]), dtype=like.dtype, seed=seed)
        return gather(noise, self.time)


_LOOP_STEPS = ("__rnn_loop_steps",)  # a graph collection: the dynamic_rnn steps being traced, innermost last


@contextlib.contextmanager
def loop_step(step: LoopStep):
    steps = get_default_graph().get_collection_ref(_LOOP_STEPS)
    steps.append(step)
    try:
        yield step
    finally:
        steps.pop()


def _dropout(x, keep_prob, seed):
    """TF1's nn.dropout: keep each element with probability keep_prob, scaled by 1 / keep_prob."""
    keep = convert_to_tensor(keep_prob, dtype=x.dtype)
    steps = get_default_graph().get_collection(_LOOP_STEPS)
    noise = steps[-1].uniform(x, seed) if steps else None
    if noise is None:
        noise = random_uniform(shape_of(x), dtype=x.dtype, seed=seed)
    kept = cast(greater_equal(noise, subtract(1.0, keep)), x.dtype)
    return multiply(truediv(x, keep), kept)


class DropoutWrapper(_Wrapper):
    """Dropout on the cell's inputs, outputs and new state (an LSTM's `c` is never dropped, as TF1).

    Each draw (inputs, outputs, each state tensor) has its own seed derived from `seed`. Inside
    `dynamic_rnn` every step draws new masks, and gradients use the masks of the forward pass (LoopStep)."""

    def __init__(self, cell, input_keep_prob=1.0, output_keep_prob=1.0, state_keep_prob=1.0,
                 variational_recurrent=False, input_size=None, dtype=None, seed=None,
                 dropout_state_filter_visitor=None):
        super().__init__(cell)
        if variational_recurrent:
            raise NotImplementedError("DropoutWrapper(variational_recurrent=True) is not supported by graphexec")
        for name, p in (("input", input_keep_prob), ("output", output_keep_prob), ("state", state_keep_prob)):
            if isinstance(p, numbers.Real) and not 0.0 < float(p) <= 1.0:
                raise ValueError(f"Parameter {name}_keep_prob must be between 0 and 1: {p}")
        self._input_keep_prob, self._output_keep_prob = input_keep_prob, output_keep_prob
        self._state_keep_prob, self._seed = state_keep_prob, seed
        self._state_filter = dropout_state_filter_visitor

    def _seed_for(self, what: str):
        return None if self._seed is None else zlib.crc32(f"{self._seed}:{what}".encode()) & 0x7FFFFFFF

    def _drop_state(self, state, path="state"):
        if isinstance(state, LSTMStateTuple):
            return LSTMStateTuple(state.c, _dropout(state.h, self._state_keep_prob, self._seed_for(path + "/h")))
        if isinstance(state, (list, tuple)):
            return type(state)(self._drop_state(s, f"{path}/{i}") for i, s in enumerate(state))
        if self._state_filter is not None and not self._state_filter(state):
            return state
        return _dropout(state, self._state_keep_prob, self._seed_for(path))

    def call(self, inputs, state, scope=None):
        if not _keep_all(self._input_keep_prob):
            inputs = _dropout(inputs, self._input_keep_prob, self._seed_for("input"))
        output, new_state = self.cell(inputs, state, scope=scope)
        if not _keep_all(self._state_keep_prob):
            new_state = self._drop_state(new_state)
        if not _keep_all(self._output_keep_prob):
            output = _dropout(output, self._output_keep_prob, self._seed_for("output"))
        return output, new_state


class ResidualWrapper(_Wrapper):
    """output = inputs + cell output (or `residual_fn(inputs, output)`)."""

    def __init__(self, cell, residual_fn=None):
        super().__init__(cell)
        self._residual_fn = residual_fn

    def call(self, inputs, state, scope=None):
        output, new_state = self.cell(inputs, state, scope=scope)
        if self._residual_fn is not None:
            return self._residual_fn(inputs, output), new_state
        return add(inputs, output), new_state


class DeviceWrapper(_Wrapper):
    """The cell's ops placed on `device` (tf.device)."""

    def __init__(self, cell, device):
        super().__init__(cell)
        self._device = device

    def call(self, inputs, state, scope=None):
        with device(self._device):
            return self.cell(inputs, state, scope=scope)


__getattr__ = api_gaps.missing_names("nn.rnn_cell", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
