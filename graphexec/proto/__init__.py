"""Protobuf messages (graphexec.proto.v1)."""
