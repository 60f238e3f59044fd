"""Messages of graphexec/v1/event.proto: TensorBoard's Event, wire-compatible with TensorFlow's."""
from graphexec.proto.v1.descriptors import build

build("graphexec/v1/event.proto", __name__, globals())
