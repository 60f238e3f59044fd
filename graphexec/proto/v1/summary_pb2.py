"""Messages of graphexec/v1/summary.proto: TensorBoard's Summary, wire-compatible with TensorFlow's."""
from graphexec.proto.v1.descriptors import build

build("graphexec/v1/summary.proto", __name__, globals())
