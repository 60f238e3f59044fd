"""Recurrent TF1 programs, written once against the TF1 API so that the same function builds them under
real TensorFlow (`tf.compat.v1` with TF_USE_LEGACY_KERAS=1, by make_golden.py) and under graphexec (by
tests/unit/test_rnn_golden.py).

Each builder takes the module `tf` and returns (feeds: {name: placeholder}, fetches: {name: tensor}); the
fetches include the gradients of a loss with respect to the inputs and to every trainable variable (named
`d/<variable name>`). Before running, `set_weights` gives every trainable variable, sorted by name, the
same seeded values in both systems.
"""
from __future__ import annotations

import numpy as np

BATCH, STEPS, DEPTH = 3, 5, 4
LENGTHS = np.array([5, 2, 3], np.int32)


def weight_values(variables):
    """{variable name: value}: seeded uniform values in [-0.5, 0.5) in sorted-name order."""
    rng = np.random.default_rng(20260)
    out = {}
    for v in sorted(variables, key=lambda v: v.name):
        shape = [int(d) for d in v.shape]
        out[v.name] = rng.uniform(-0.5, 0.5, shape).astype(np.float32)
    return out


def set_weights(tf, sess):
    values = weight_values(tf.trainable_variables())
    for v in tf.trainable_variables():
        v.load(values[v.name], sess)
    return sorted(values)


def inputs_case(seed=1, steps=STEPS, lengths=LENGTHS):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(BATCH, steps, DEPTH)).astype(np.float32), "lengths": np.asarray(lengths, np.int32)}


def _with_gradients(tf, x, fetches, loss):
    variables = sorted(tf.trainable_variables(), key=lambda v: v.name)
    grads = tf.gradients(loss, [x] + variables)
    fetches["d/x"] = grads[0]
    for v, g in zip(variables, grads[1:]):
        fetches["d/" + v.name] = g
    fetches["loss"] = loss
    return fetches


def _leaves(state):
    if isinstance(state, (list, tuple)):
        return [leaf for part in state for leaf in _leaves(part)]
    return [state]


def _flat_state(tf, state, fetches, prefix="state"):
    for i, s in enumerate(_leaves(state)):
        fetches[f"{prefix}/{i}"] = s
    return tf.add_n([tf.reduce_sum(tf.sin(s)) for s in _leaves(state)])


def _dynamic(tf, make_cell, use_lengths=False, time_major=False):
    x = tf.placeholder(tf.float32, [None, None, DEPTH], name="x")
    lengths = tf.placeholder(tf.int32, [None], name="lengths")
    inputs = tf.transpose(x, [1, 0, 2]) if time_major else x
    outputs, state = tf.nn.dynamic_rnn(make_cell(), inputs, sequence_length=lengths if use_lengths else None,
                                       dtype=tf.float32, time_major=time_major)
    fetches = {"outputs": outputs}
    loss = tf.reduce_sum(tf.square(outputs)) + _flat_state(tf, state, fetches)
    return {"x": x, "lengths": lengths}, _with_gradients(tf, x, fetches, loss)


def basic_rnn(tf):
    return _dynamic(tf, lambda: tf.nn.rnn_cell.BasicRNNCell(6))


def basic_lstm(tf):
    return _dynamic(tf, lambda: tf.nn.rnn_cell.BasicLSTMCell(5, forget_bias=0.5))


def basic_lstm_concat_state(tf):
    return _dynamic(tf, lambda: tf.nn.rnn_cell.BasicLSTMCell(5, state_is_tuple=False))


def lstm_peepholes_projection(tf):
    return _dynamic(tf, lambda: tf.nn.rnn_cell.LSTMCell(6, use_peepholes=True, num_proj=3, cell_clip=0.8,
                                                       proj_clip=0.6))


def lstm_plain(tf):
    return _dynamic(tf, lambda: tf.nn.rnn_cell.LSTMCell(4), use_lengths=True)


def gru(tf):
    return _dynamic(tf, lambda: tf.nn.rnn_cell.GRUCell(5))


def multi_rnn(tf):
    return _dynamic(tf, lambda: tf.nn.rnn_cell.MultiRNNCell(
        [tf.nn.rnn_cell.BasicLSTMCell(5), tf.nn.rnn_cell.GRUCell(4), tf.nn.rnn_cell.BasicRNNCell(3)]))


def dynamic_sequence_length(tf):
    return _dynamic(tf, lambda: tf.nn.rnn_cell.BasicLSTMCell(5), use_lengths=True)


def dynamic_time_major(tf):
    return _dynamic(tf, lambda: tf.nn.rnn_cell.GRUCell(4), use_lengths=True, time_major=True)


def dropout_keep_one(tf):
    return _dynamic(tf, lambda: tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.BasicLSTMCell(5), input_keep_prob=1.0,
                                                              output_keep_prob=1.0, state_keep_prob=1.0, seed=3))


def residual(tf):
    return _dynamic(tf, lambda: tf.nn.rnn_cell.ResidualWrapper(tf.nn.rnn_cell.GRUCell(DEPTH)), use_lengths=True)


def static_rnn(tf):
    x = tf.placeholder(tf.float32, [BATCH, STEPS, DEPTH], name="x")
    lengths = tf.placeholder(tf.int32, [None], name="lengths")
    cell = tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.LSTMCell(4, use_peepholes=True), tf.nn.rnn_cell.GRUCell(3)])
    outputs, state = tf.nn.static_rnn(cell, tf.unstack(x, axis=1), sequence_length=lengths, dtype=tf.float32)
    fetches = {"outputs": tf.stack(outputs, axis=1)}
    loss = tf.reduce_sum(tf.square(fetches["outputs"])) + _flat_state(tf, state, fetches)
    return {"x": x, "lengths": lengths}, _with_gradients(tf, x, fetches, loss)


def bidirectional_dynamic(tf):
    x = tf.placeholder(tf.float32, [None, None, DEPTH], name="x")
    lengths = tf.placeholder(tf.int32, [None], name="lengths")
    (out_fw, out_bw), (state_fw, state_bw) = tf.nn.bidirectional_dynamic_rnn(
        tf.nn.rnn_cell.BasicLSTMCell(4), tf.nn.rnn_cell.GRUCell(3), x, sequence_length=lengths, dtype=tf.float32)
    fetches = {"out_fw": out_fw, "out_bw": out_bw}
    loss = (tf.reduce_sum(tf.square(out_fw)) + tf.reduce_sum(out_bw * tf.range(3, dtype=tf.float32))
            + _flat_state(tf, state_fw, fetches, "state_fw") + _flat_state(tf, state_bw, fetches, "state_bw"))
    return {"x": x, "lengths": lengths}, _with_gradients(tf, x, fetches, loss)


def bidirectional_time_major(tf):
    """Time-major, no sequence_length: the backward direction reverses whole sequences."""
    x = tf.placeholder(tf.float32, [None, None, DEPTH], name="x")
    lengths = tf.placeholder(tf.int32, [None], name="lengths")
    (out_fw, out_bw), (state_fw, state_bw) = tf.nn.bidirectional_dynamic_rnn(
        tf.nn.rnn_cell.GRUCell(3), tf.nn.rnn_cell.LSTMCell(2, use_peepholes=True), tf.transpose(x, [1, 0, 2]),
        dtype=tf.float32, time_major=True)
    fetches = {"out_fw": out_fw, "out_bw": out_bw}
    loss = (tf.reduce_sum(out_fw * tf.range(3, dtype=tf.float32)) + tf.reduce_sum(tf.square(out_bw))
            + _flat_state(tf, state_fw, fetches, "state_fw") + _flat_state(tf, state_bw, fetches, "state_bw"))
    return {"x": x, "lengths": lengths}, _with_gradients(tf, x, fetches, loss)


def multi_rnn_concat_state(tf):
    return _dynamic(tf, lambda: tf.nn.rnn_cell.MultiRNNCell(
        [tf.nn.rnn_cell.BasicLSTMCell(3, state_is_tuple=False),
         tf.nn.rnn_cell.LSTMCell(2, num_proj=4, state_is_tuple=False)], state_is_tuple=False), use_lengths=True)


def static_bidirectional(tf, static_bidirectional_rnn=None):
    x = tf.placeholder(tf.float32, [BATCH, STEPS, DEPTH], name="x")
    lengths = tf.placeholder(tf.int32, [None], name="lengths")
    run = static_bidirectional_rnn or tf.nn.static_bidirectional_rnn
    outputs, state_fw, state_bw = run(tf.nn.rnn_cell.GRUCell(3), tf.nn.rnn_cell.BasicRNNCell(2),
                                      tf.unstack(x, axis=1), sequence_length=lengths, dtype=tf.float32)
    fetches = {"outputs": tf.stack(outputs, axis=1)}
    loss = (tf.reduce_sum(fetches["outputs"] * tf.range(5, dtype=tf.float32))
            + _flat_state(tf, state_fw, fetches, "state_fw") + _flat_state(tf, state_bw, fetches, "state_bw"))
    return {"x": x, "lengths": lengths}, _with_gradients(tf, x, fetches, loss)


PROGRAMS = {f.__name__: f for f in (basic_rnn, basic_lstm, basic_lstm_concat_state, lstm_peepholes_projection,
                                    lstm_plain, gru, multi_rnn, dynamic_sequence_length, dynamic_time_major,
                                    dropout_keep_one, residual, static_rnn, bidirectional_dynamic,
                                    static_bidirectional, bidirectional_time_major, multi_rnn_concat_state)}
# Every program runs on 5 steps; those of unknown time dimension on 3 steps too.
CASES = {"steps5": inputs_case(1), "steps3": inputs_case(2, steps=3, lengths=[3, 1, 2])}
STATIC = {"static_rnn", "static_bidirectional"}


def cases_of(name):
    return {k: v for k, v in CASES.items() if k == "steps5" or name not in STATIC}

# -- training: an LSTM sequence classifier, a few Adam steps --------------------------------------------------
TRAIN_STEPS = 6


def classifier_data():
    """Sequences of 6 steps of 3 features; the class is the sign pattern of the running sum."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(16, 6, 3)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int32) + (x[:, -1, 1] > 0).astype(np.int32)
    lengths = rng.integers(3, 7, size=16).astype(np.int32)
    return x, y, lengths


def lstm_classifier(tf):
    """Returns (feeds, loss, train_op): last state's h -> dense logits over 3 classes."""
    x = tf.placeholder(tf.float32, [None, None, 3], name="x")
    y = tf.placeholder(tf.int32, [None], name="y")
    lengths = tf.placeholder(tf.int32, [None], name="lengths")
    _, state = tf.nn.dynamic_rnn(tf.nn.rnn_cell.BasicLSTMCell(8), x, sequence_length=lengths, dtype=tf.float32)
    logits = tf.layers.dense(state.h, 3, name="logits")
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    train_op = tf.train.AdamOptimizer(0.05).minimize(loss)
    return {"x": x, "y": y, "lengths": lengths}, loss, train_op


def train_losses(tf, sess, feeds, loss, train_op):
    x, y, lengths = classifier_data()
    feed = {feeds["x"]: x, feeds["y"]: y, feeds["lengths"]: lengths}
    return [float(sess.run([loss, train_op], feed)[0]) for _ in range(TRAIN_STEPS)] + [float(sess.run(loss, feed))]
