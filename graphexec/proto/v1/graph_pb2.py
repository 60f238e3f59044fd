"""Messages of graphexec/v1/graph.proto (see descriptors.py)."""
from graphexec.proto.v1.descriptors import build

build("graphexec/v1/graph.proto", __name__, globals())
