"""tf.contrib.rnn: TF1's cells (the same classes as tf.nn.rnn_cell) and the static RNNs."""
from graphexec.rnn import static_bidirectional_rnn, static_rnn
from graphexec.rnn_cell import (BasicLSTMCell, BasicRNNCell, DeviceWrapper, DropoutWrapper, GRUCell, LSTMCell,
                                LSTMStateTuple, MultiRNNCell, ResidualWrapper, RNNCell)

__all__ = ["RNNCell", "BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell", "MultiRNNCell", "DropoutWrapper",
           "ResidualWrapper", "DeviceWrapper", "LSTMStateTuple", "static_rnn", "static_bidirectional_rnn"]
