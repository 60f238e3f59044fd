"""Regenerate graphexec/proto/v1/graphexec_v1.binpb, the descriptor set of protos/graphexec/v1/*.proto.

The Python message classes are built from it at import time by graphexec/proto/v1/descriptors.py (as
protoc's generated modules build theirs from the serialized descriptors they embed), so the repository
holds no generated Python. No gRPC stubs either: see graphexec/rpc/methods.py for why.
Usage: python tools/gen_protos.py [--out DIR]   (default: graphexec/proto/v1)
"""
import argparse
import pathlib
import sys
import tempfile

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
DESCRIPTOR_SET = "graphexec_v1.binpb"


def generate(out_dir: pathlib.Path) -> None:
    sources = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "graphexec" / "v1").glob("*.proto"))
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        raw = pathlib.Path(tmp) / DESCRIPTOR_SET
        args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", "--include_imports", f"--descriptor_set_out={raw}",
                *sources]
        if protoc.main(args) != 0:
            sys.exit("protoc failed")
        descriptors = descriptor_pb2.FileDescriptorSet.FromString(raw.read_bytes())
    out_dir.mkdir(parents=True, exist_ok=True)
    # Deterministic bytes, so the committed file can be compared with a regenerated one.
    (out_dir / DESCRIPTOR_SET).write_bytes(descriptors.SerializeToString(deterministic=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "graphexec" / "proto" / "v1")
    generate(parser.parse_args().out)
