"""Protobuf messages of protos/graphexec/v1, built from the descriptor set graphexec_v1.binpb
(regenerate it with tools/gen_protos.py)."""
