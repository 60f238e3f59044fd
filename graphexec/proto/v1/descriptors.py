"""Message classes of protos/graphexec/v1/*.proto, built from the committed descriptor set.

`graphexec_v1.binpb` is the FileDescriptorSet that `python tools/gen_protos.py` writes (a test checks it
against a fresh one). `build` does what protoc's generated `*_pb2.py` modules do with the serialized
descriptor they embed: add the file to the default descriptor pool (so gRPC reflection serves it) and
put its messages, enums and enum values in the module's namespace. The classes are protobuf's own.
"""
from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.internal import builder

DESCRIPTOR_SET = Path(__file__).with_name("graphexec_v1.binpb")
_FILES = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()).file}


def _added(name: str):
    """The descriptor of .proto file `name` in the default pool, adding it (after its imports) if needed."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName(name)
    except KeyError:
        proto = _FILES[name]
        for dependency in proto.dependency:
            _added(dependency)
        return pool.AddSerializedFile(proto.SerializeToString())


def build(name: str, module_name: str, namespace: dict) -> None:
    """Fill `namespace` (a module's globals) as protoc's generated module for `name` would."""
    namespace["DESCRIPTOR"] = _added(name)
    builder.BuildMessageAndEnumDescriptors(namespace["DESCRIPTOR"], namespace)
    builder.BuildTopDescriptorsAndMessages(namespace["DESCRIPTOR"], module_name, namespace)
