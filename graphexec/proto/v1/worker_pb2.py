"""Messages of graphexec/v1/worker.proto (see descriptors.py)."""
from graphexec.proto.v1.descriptors import build

build("graphexec/v1/worker.proto", __name__, globals())
