"""tf.contrib: the parts of TF1's contrib that classic programs use."""
from graphexec.contrib import layers, rnn

__all__ = ["layers", "rnn"]
