"""tf.contrib: the parts of TF1's contrib that classic programs use."""
from graphexec.contrib import layers

__all__ = ["layers"]
