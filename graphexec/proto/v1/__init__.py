"""Generated protobuf modules; regenerate with tools/gen_protos.py."""
