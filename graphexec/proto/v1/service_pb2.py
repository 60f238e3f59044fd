"""Messages of graphexec/v1/service.proto (see descriptors.py)."""
from graphexec.proto.v1.descriptors import build

build("graphexec/v1/service.proto", __name__, globals())
