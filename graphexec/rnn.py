"""tf.nn.dynamic_rnn, static_rnn, bidirectional_dynamic_rnn and static_bidirectional_rnn, as TF1 builds them.

dynamic_rnn is a tf.while_loop over the time steps (so the time dimension may be a placeholder's unknown
one) that writes each step's output to a TensorArray; the loop's gradient back-propagates through time.
With `sequence_length`, a sequence's outputs after its length are zeros and its state stops changing
(TF1's `_rnn_step` copy-through), so the final state is the state at its last valid step.
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.debugging import assert_equal
from graphexec.framework import TensorShape, control_dependencies, current_function
from graphexec.ops.array_ops import expand_dims, identity, reshape, transpose, zeros
from graphexec.ops.array_ops import range as tf_range
from graphexec.ops.array_ops import shape as shape_of
from graphexec.ops.control_flow_ops import while_loop
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.indexing_ops import gather, gather_nd
from graphexec.ops.joining_ops import concat, stack
from graphexec.ops.math_ops import cast, greater_equal, less, subtract, where
from graphexec.ops.structure import flatten, pack_sequence_as
from graphexec.ops.tensor_array_ops import TensorArray
from graphexec.rnn_cell import LoopStep, loop_step
from graphexec.variable_scope import variable_scope

__all__ = ["dynamic_rnn", "static_rnn", "bidirectional_dynamic_rnn", "static_bidirectional_rnn"]


def _swap_batch_time(x):
    x = convert_to_tensor(x)
    rank = x.shape.ndims
    if rank is None or rank < 2:
        raise ValueError(f"RNN inputs must be at least rank 2 (time and batch), got {x.name} of shape {x.shape}")
    return transpose(x, [1, 0, *range(2, rank)])


def _initial_state(cell, initial_state, dtype, batch_size):
    if initial_state is not None:
        return initial_state
    if dtype is None:
        raise ValueError("If there is no initial_state, you must give a dtype.")
    return cell.zero_state(batch_size, dtype)


def _sequence_length(sequence_length):
    if sequence_length is None:
        return None
    sequence_length = cast(convert_to_tensor(sequence_length), dtypes.int32)
    if sequence_length.shape.ndims not in (None, 1):
        raise ValueError(f"sequence_length must be a vector of length batch_size, but saw shape: "
                         f"{sequence_length.shape}")
    return identity(sequence_length, name="sequence_length")


def _copy_past_end(time, sequence_length, past_value, new_value):
    """Per batch row: `new_value` while time < its length, `past_value` after (TF1's _rnn_step)."""
    done = greater_equal(time, sequence_length)
    rank = new_value.shape.ndims
    for _ in range(1, rank if rank is not None else 2):
        done = expand_dims(done, -1)
    return where(done, past_value, new_value)


def _zero_output(cell, batch_size, dtype):
    return pack_sequence_as(cell.output_size, [
        zeros(stack([batch_size, int(n)]), dtype=dtype) for n in flatten(cell.output_size)])


def _batch_size(flat_inputs, axis):
    static = flat_inputs[0].shape.dims[axis] if flat_inputs[0].shape.dims else None
    return static if static is not None else shape_of(flat_inputs[0])[axis]


def _relaxed(shape):
    """The loop invariant of a state: its shape with the batch dimension unknown."""
    return TensorShape(None if shape is None else (None, *shape[1:]))


def dynamic_rnn(cell, inputs, sequence_length=None, initial_state=None, dtype=None, parallel_iterations=None,
                swap_memory=False, time_major=False, scope=None):
    """Run `cell` over the time steps of `inputs` ([batch, time, ...], or [time, batch, ...] when
    `time_major`) in a while loop; returns (outputs, final state)."""
    with variable_scope(scope or "rnn"):
        flat = [convert_to_tensor(x) for x in flatten(inputs)]
        if not time_major:
            flat = [_swap_batch_time(x) for x in flat]
        sequence_length = _sequence_length(sequence_length)
        batch_size = _batch_size(flat, 1)
        if sequence_length is not None:  # as TF1: a wrong length fails here, not somewhere inside the loop
            check = assert_equal(shape_of(sequence_length), stack([batch_size]),
                                 message=f"Expected shape for Tensor {sequence_length.name} is [batch_size]")
            with control_dependencies([check]):
                sequence_length = identity(sequence_length, name="CheckSeqLen")
        state = _initial_state(cell, initial_state, dtype, batch_size)
        outputs, final_state = _dynamic_loop(cell, inputs, flat, state, sequence_length, batch_size,
                                             parallel_iterations or 32)
        if not time_major:
            outputs = pack_sequence_as(outputs, [_swap_batch_time(o) for o in flatten(outputs)])
        return outputs, final_state


def _dynamic_loop(cell, inputs, flat, state, sequence_length, batch_size, parallel_iterations):
    time_steps = shape_of(flat[0])[0]
    static_steps = flat[0].shape.dims[0] if flat[0].shape.dims else None
    out_dtype = flatten(state)[0].dtype
    zero_output = _zero_output(cell, batch_size, out_dtype) if sequence_length is not None else None
    arrays = [TensorArray(out_dtype) for _ in flatten(cell.output_size)]

    outside = current_function()

    def body(time, written, state):
        step_input = pack_sequence_as(inputs, [gather(x, time) for x in flat])
        with loop_step(LoopStep(time, time_steps, batch_size, outside)):
            output, new_state = cell(step_input, state)
        if sequence_length is not None:
            output = pack_sequence_as(output, [_copy_past_end(time, sequence_length, z, o) for z, o in
                                               zip(flatten(zero_output), flatten(output))])
            new_state = pack_sequence_as(new_state, [_copy_past_end(time, sequence_length, s, n) for s, n in
                                                     zip(flatten(state), flatten(new_state))])
        written = [ta.write(time, o) for ta, o in zip(written, flatten(output))]
        return time + 1, written, new_state

    time = convert_to_tensor(np.asarray(0, np.int32), name="time")
    state_invariants = pack_sequence_as(state, [_relaxed(convert_to_tensor(s)._shape) for s in flatten(state)])
    _, written, final_state = while_loop(
        lambda time, written, state: less(time, time_steps), body, (time, arrays, state),
        shape_invariants=(TensorShape([]), [TensorShape(None)] * len(arrays), state_invariants),
        parallel_iterations=parallel_iterations, maximum_iterations=time_steps)
    outputs = []
    for ta, size in zip(written, flatten(cell.output_size)):
        # the shape given again: no step at all leaves the rows as TensorArray's empty [0] start
        rows = reshape(ta.stack(), stack([time_steps, batch_size, int(size)]))
        rows.set_shape((static_steps, flat[0].shape.dims[1], int(size)))
        outputs.append(rows)
    return pack_sequence_as(cell.output_size, outputs), final_state


def static_rnn(cell, inputs, initial_state=None, dtype=None, sequence_length=None, scope=None):
    """The cell applied to each tensor of the list `inputs` in turn (the graph unrolled); returns
    (list of outputs, final state)."""
    if not isinstance(inputs, (list, tuple)):
        raise TypeError("inputs must be a sequence")
    if not inputs:
        raise ValueError("inputs must not be empty")
    with variable_scope(scope or "rnn") as scope_now:
        flat = [convert_to_tensor(x) for x in flatten(inputs[0])]
        batch_size = _batch_size(flat, 0)
        state = _initial_state(cell, initial_state, dtype, batch_size)
        sequence_length = _sequence_length(sequence_length)
        zero_output = None
        if sequence_length is not None:
            zero_output = _zero_output(cell, batch_size, flatten(state)[0].dtype)
        outputs = []
        for time, step_input in enumerate(inputs):
            if time > 0:
                scope_now.reuse_variables()
            output, new_state = cell(step_input, state)
            if sequence_length is not None:
                output = pack_sequence_as(output, [_copy_past_end(time, sequence_length, z, o) for z, o in
                                                   zip(flatten(zero_output), flatten(output))])
                new_state = pack_sequence_as(new_state, [_copy_past_end(time, sequence_length, s, n) for s, n in
                                                         zip(flatten(state), flatten(new_state))])
            outputs.append(output)
            state = new_state
        return outputs, state


def _reverse_time_major(x, sequence_length):
    """Reverse dimension 0 of x ([time, batch, ...]); with `sequence_length`, only each row's first
    sequence_length[b] steps (TF1's reverse_sequence)."""
    steps = shape_of(x)[0]
    if sequence_length is None:
        reversed_x = gather(x, tf_range(steps - 1, -1, -1))
    else:
        times = expand_dims(tf_range(steps), 1)  # [time, 1]
        lengths = expand_dims(sequence_length, 0)  # [1, batch]
        source = where(less(times, lengths), subtract(subtract(lengths, 1), times), times + 0 * lengths)
        batch = expand_dims(tf_range(shape_of(x)[1]), 0) + 0 * times
        reversed_x = gather_nd(x, stack([source, batch], axis=-1))
    reversed_x.set_shape(x.shape)
    return reversed_x


def bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=None, initial_state_fw=None,
                              initial_state_bw=None, dtype=None, parallel_iterations=None, swap_memory=False,
                              time_major=False, scope=None):
    """A forward dynamic_rnn (scope `fw`) and one over the reversed sequences (scope `bw`, its outputs
    reversed back); returns ((output_fw, output_bw), (state_fw, state_bw))."""
    with variable_scope(scope or "bidirectional_rnn"):
        with variable_scope("fw") as fw_scope:
            output_fw, state_fw = dynamic_rnn(cell_fw, inputs, sequence_length, initial_state_fw, dtype,
                                              parallel_iterations, swap_memory, time_major, scope=fw_scope)
        with variable_scope("bw") as bw_scope:
            lengths = _sequence_length(sequence_length)

            def reverse(x):
                x = convert_to_tensor(x)
                if time_major:
                    return _reverse_time_major(x, lengths)
                return _swap_batch_time(_reverse_time_major(_swap_batch_time(x), lengths))

            reversed_inputs = pack_sequence_as(inputs, [reverse(x) for x in flatten(inputs)])
            reversed_output, state_bw = dynamic_rnn(cell_bw, reversed_inputs, sequence_length, initial_state_bw,
                                                    dtype, parallel_iterations, swap_memory, time_major,
                                                    scope=bw_scope)
            output_bw = pack_sequence_as(reversed_output, [reverse(o) for o in flatten(reversed_output)])
    return (output_fw, output_bw), (state_fw, state_bw)


def static_bidirectional_rnn(cell_fw, cell_bw, inputs, initial_state_fw=None, initial_state_bw=None, dtype=None,
                             sequence_length=None, scope=None):
    """static_rnn forward (scope `fw`) and over the reversed list (scope `bw`); each step's outputs are the
    two directions' concatenated. Returns (outputs, state_fw, state_bw)."""
    if not isinstance(inputs, (list, tuple)):
        raise TypeError("inputs must be a list")
    if not inputs:
        raise ValueError("inputs must not be empty")
    with variable_scope(scope or "bidirectional_rnn"):
        with variable_scope("fw") as fw_scope:
            output_fw, state_fw = static_rnn(cell_fw, inputs, initial_state_fw, dtype, sequence_length,
                                             scope=fw_scope)
        with variable_scope("bw") as bw_scope:
            lengths = _sequence_length(sequence_length)

            def reverse(sequence):
                if lengths is None:
                    return list(reversed(sequence))
                flat = [flatten(step) for step in sequence]
                columns = [_reverse_time_major(stack([row[i] for row in flat]), lengths)
                           for i in range(len(flat[0]))]
                return [pack_sequence_as(sequence[t], [gather(c, t) for c in columns]) for t in range(len(flat))]

            reversed_output, state_bw = static_rnn(cell_bw, reverse(inputs), initial_state_bw, dtype,
                                                   sequence_length, scope=bw_scope)
            output_bw = reverse(reversed_output)
    outputs = [concat([fw, bw], 1) for fw, bw in zip(output_fw, output_bw)]
    return outputs, state_fw, state_bw

