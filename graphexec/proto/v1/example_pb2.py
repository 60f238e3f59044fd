"""Messages of graphexec/v1/example.proto: tf.train.Example, wire-compatible with TensorFlow's."""
from graphexec.proto.v1.descriptors import build

build("graphexec/v1/example.proto", __name__, globals())
