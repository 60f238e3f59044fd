"""tf.nn.rnn_cell and dynamic_rnn beyond the TensorFlow goldens: finite-difference gradients through time,
DropoutWrapper statistics and gradients, cells written by users, and clear errors."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from tests.unit.opcheck import check_grad


def _weights_from(tensors: dict):
    """A custom getter handing the cell the given tensors (placeholders) instead of variables."""
    def getter(_getter, name, *args, **kwargs):
        return tensors[name.split("/", 2)[2]]  # w/rnn/<cell>/<weight>
    return getter


def _lstm_through_time(x, kernel, bias, c0, h0):
    x.set_shape([None, None, 2])  # a cell needs the depth; "partial" placeholders know no dimension
    cell = tf.nn.rnn_cell.BasicLSTMCell(3, forget_bias=0.7)
    with tf.variable_scope("w", custom_getter=_weights_from({"basic_lstm_cell/kernel": kernel,
                                                                "basic_lstm_cell/bias": bias})):
        outputs, state = tf.nn.dynamic_rnn(cell, x, sequence_length=tf.constant([4, 2]),
                                           initial_state=tf.nn.rnn_cell.LSTMStateTuple(c0, h0))
    return outputs, state.c, state.h


def test_lstm_gradients_through_time_match_finite_differences():
    rng = np.random.default_rng(0)
    check_grad(_lstm_through_time, [rng.normal(size=(2, 4, 2)), rng.uniform(-0.6, 0.6, (5, 12)),
                                    rng.uniform(-0.3, 0.3, 12), rng.normal(size=(2, 3)) * 0.5,
                                    rng.normal(size=(2, 3)) * 0.5], rtol=1e-6, atol=1e-8)


def _gru_time_major(x, gate_kernel, gate_bias, kernel, bias):
    x.set_shape([None, None, 2])
    cell = tf.nn.rnn_cell.GRUCell(2)
    weights = {"gru_cell/gates/kernel": gate_kernel, "gru_cell/gates/bias": gate_bias,
               "gru_cell/candidate/kernel": kernel, "gru_cell/candidate/bias": bias}
    with tf.variable_scope("w", custom_getter=_weights_from(weights)):
        outputs, state = tf.nn.dynamic_rnn(cell, x, dtype=tf.float64, time_major=True)
    return outputs, state


def test_gru_gradients_match_finite_differences_with_an_unknown_time_dimension():
    """The "partial" mode feeds placeholders of unknown dims: the loop's length is known at run time only."""
    rng = np.random.default_rng(1)
    check_grad(_gru_time_major, [rng.normal(size=(3, 2, 2)), rng.uniform(-0.6, 0.6, (4, 4)),
                                 rng.uniform(-0.3, 0.3, 4), rng.uniform(-0.6, 0.6, (4, 2)), rng.uniform(-0.3, 0.3, 2)],
               rtol=1e-6, atol=1e-8)


def _lstm_projection_static(x, kernel, peephole, projection):
    cell = tf.nn.rnn_cell.LSTMCell(3, use_peepholes=True, num_proj=2)
    weights = {"lstm_cell/kernel": kernel, "lstm_cell/bias": tf.zeros([12], tf.float64),
               "lstm_cell/w_f_diag": peephole[0], "lstm_cell/w_i_diag": peephole[1], "lstm_cell/w_o_diag": peephole[2],
               "lstm_cell/projection/kernel": projection}
    with tf.variable_scope("w", custom_getter=_weights_from(weights)):
        outputs, state = tf.nn.static_rnn(cell, tf.unstack(x, num=3, axis=1), dtype=tf.float64)
    return outputs, state.c


def test_lstm_peepholes_projection_static_rnn_gradients():
    rng = np.random.default_rng(2)
    check_grad(_lstm_projection_static, [rng.normal(size=(2, 3, 2)), rng.uniform(-0.6, 0.6, (4, 12)),
                                         rng.uniform(-0.5, 0.5, (3, 3)), rng.uniform(-0.6, 0.6, (3, 2))],
               rtol=1e-6, atol=1e-8, modes=("feed",))


class Echo(tf.nn.rnn_cell.RNNCell):
    """A user's cell: the output is the input; the state counts the steps."""

    def __init__(self, depth):
        super().__init__()
        self.depth = depth

    state_size = property(lambda self: 1)
    output_size = property(lambda self: self.depth)

    def call(self, inputs, state):
        return inputs, state + 1.0


def _run(fetches, feed=None, seed=None):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(fetches, feed)


def test_user_cell_counts_steps_and_stops_at_each_length():
    x = tf.placeholder(tf.float32, [None, None, 2])
    outputs, state = tf.nn.dynamic_rnn(Echo(2), x, sequence_length=[3, 1, 0], dtype=tf.float32)
    data = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2) + 1
    got_outputs, got_state = _run([outputs, state], {x: data})
    np.testing.assert_array_equal(got_state, [[3.0], [1.0], [0.0]])
    mask = (np.arange(4)[None, :] < np.array([3, 1, 0])[:, None])[..., None]
    np.testing.assert_array_equal(got_outputs, np.where(mask, data, 0))


def test_dropout_wrapper_statistics_and_scaling():
    """Inputs and outputs keep about keep_prob of their elements, scaled by 1 / keep_prob; an LSTM's c is
    never dropped while its h is; a seeded graph draws the same masks in a new session."""
    tf.set_random_seed(11)  # the LSTM's initial weights too
    x = tf.constant(np.ones((400, 6, 10), np.float32))
    echo = tf.nn.rnn_cell.DropoutWrapper(Echo(10), input_keep_prob=0.6, seed=5)
    dropped_inputs, _ = tf.nn.dynamic_rnn(echo, x, dtype=tf.float32, scope="echo")
    lstm = tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.BasicLSTMCell(10), output_keep_prob=0.75,
                                         state_keep_prob=0.5, seed=6)
    outputs, state = tf.nn.dynamic_rnn(lstm, x, dtype=tf.float32)
    first = _run([dropped_inputs, outputs, state.c, state.h])
    again = _run([dropped_inputs, outputs, state.c, state.h])
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    inputs_seen, outs, c, h = first
    assert set(np.unique(inputs_seen)) == {0.0, np.float32(1 / 0.6)}
    assert abs(np.mean(inputs_seen != 0) - 0.6) < 0.01  # 24000 draws: standard deviation 0.003
    assert abs(np.mean(outs != 0) - 0.75) < 0.01
    assert abs(np.mean(h != 0) - 0.5) < 0.04  # 4000 draws
    assert np.all(c != 0)
    per_step = (inputs_seen != 0).mean(axis=(0, 2))  # a fresh mask on every step, not one for all
    assert not np.array_equal(inputs_seen[:, 0], inputs_seen[:, 1]) and np.all(np.abs(per_step - 0.6) < 0.03)


def test_dropout_gradient_uses_the_forward_masks():
    """d/dx of sum(w * dropped outputs) equals d/dx of sum(w * mask * outputs / keep) with the masks the
    forward pass drew (recovered from its outputs): the loop's gradient does not draw new masks."""
    rng = np.random.default_rng(3)
    x = tf.placeholder(tf.float32, [4, 5, 3])
    cell = tf.nn.rnn_cell.GRUCell(6)
    plain, _ = tf.nn.dynamic_rnn(cell, x, dtype=tf.float32, scope="rnn")
    dropped, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.DropoutWrapper(cell, output_keep_prob=0.5, seed=1), x,
                                   dtype=tf.float32, scope="rnn")
    w = rng.normal(size=(4, 5, 6)).astype(np.float32)
    grad_dropped = tf.gradients(tf.reduce_sum(dropped * w), x)[0]
    mask = tf.placeholder(tf.float32, [4, 5, 6])
    grad_masked = tf.gradients(tf.reduce_sum(plain * mask * w / 0.5), x)[0]
    data = rng.normal(size=(4, 5, 3)).astype(np.float32)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got_plain, got_dropped, got_grad = sess.run([plain, dropped, grad_dropped], {x: data})
        kept = (got_dropped != 0).astype(np.float32)
        np.testing.assert_allclose(got_dropped, kept * got_plain / 0.5, rtol=1e-6)
        want = sess.run(grad_masked, {x: data, mask: kept})
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(got_grad, want, rtol=1e-5, atol=1e-6)


def test_contrib_rnn_names_are_the_cells():
    assert tf.contrib.rnn.BasicLSTMCell is tf.nn.rnn_cell.BasicLSTMCell
    assert tf.contrib.rnn.LSTMStateTuple is tf.nn.rnn_cell.LSTMStateTuple
    assert tf.contrib.rnn.static_rnn is tf.nn.static_rnn


def test_second_cell_in_one_scope_gets_a_numbered_scope_and_reuse_shares():
    x = tf.placeholder(tf.float32, [2, 3, 4])
    tf.nn.dynamic_rnn(tf.nn.rnn_cell.GRUCell(2), x, dtype=tf.float32)
    with tf.variable_scope("shared"):
        tf.nn.dynamic_rnn(tf.nn.rnn_cell.BasicRNNCell(2), x, dtype=tf.float32)
    with tf.variable_scope("shared", reuse=True):
        tf.nn.dynamic_rnn(tf.nn.rnn_cell.BasicRNNCell(2), x, dtype=tf.float32)
    names = [v.name for v in tf.trainable_variables()]
    assert names == ["rnn/gru_cell/gates/kernel:0", "rnn/gru_cell/gates/bias:0", "rnn/gru_cell/candidate/kernel:0",
                     "rnn/gru_cell/candidate/bias:0", "shared/rnn/basic_rnn_cell/kernel:0",
                     "shared/rnn/basic_rnn_cell/bias:0"]


def test_bad_calls_say_what_is_wrong():
    x = tf.placeholder(tf.float32, [2, 3, 4])
    with pytest.raises(ValueError, match="must give a dtype"):
        tf.nn.dynamic_rnn(tf.nn.rnn_cell.GRUCell(2), x)
    with pytest.raises(ValueError, match="at least rank 2"):
        tf.nn.dynamic_rnn(tf.nn.rnn_cell.GRUCell(2), tf.placeholder(tf.float32, [3]), dtype=tf.float32)
    with pytest.raises(ValueError, match="inputs.shape\\[-1\\] to be known"):
        tf.nn.dynamic_rnn(tf.nn.rnn_cell.GRUCell(2), tf.placeholder(tf.float32, [2, 3, None]), dtype=tf.float32)
    with pytest.raises(ValueError, match="output_keep_prob must be between 0 and 1"):
        tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.GRUCell(2), output_keep_prob=1.5)
    with pytest.raises(TypeError, match="inputs must be a sequence"):
        tf.nn.static_rnn(tf.nn.rnn_cell.GRUCell(2), x, dtype=tf.float32)
    with pytest.raises(ValueError, match="Must specify at least one cell"):
        tf.nn.rnn_cell.MultiRNNCell([])


def test_device_wrapper_places_the_cell_ops():
    x = tf.placeholder(tf.float32, [2, 3, 4])
    outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.DeviceWrapper(tf.nn.rnn_cell.GRUCell(2), "/cpu:0"), x,
                                   dtype=tf.float32)
    matmuls = [op for op in tf.get_default_graph().get_operations() if op.type == "MatMul"]
    assert matmuls and all(op.device.lower().endswith("cpu:0") for op in matmuls)
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchCell'"):  # not a TF1 name either
        tf.nn.rnn_cell.NoSuchCell  # noqa: B018
