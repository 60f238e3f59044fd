"""Generated protobuf code (graphexec.proto.v1)."""
