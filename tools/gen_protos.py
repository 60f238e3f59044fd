"""Regenerate graphexec/proto/v1/*_pb2.py from protos/graphexec/v1/*.proto (messages only: no gRPC stubs,
see graphexec/rpc/methods.py for why).

The .proto package is graphexec.v1 but the Python modules live under graphexec.proto.v1 (the
package's only import root), so generated imports are rewritten accordingly.
Usage: python tools/gen_protos.py [--out DIR]   (default: graphexec/proto/v1)
"""
import argparse
import pathlib
import re
import sys
import tempfile

from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"


def generate(out_dir: pathlib.Path) -> None:
    sources = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "graphexec" / "v1").glob("*.proto"))
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={tmp}", *sources]
        if protoc.main(args) != 0:
            sys.exit("protoc failed")
        out_dir.mkdir(parents=True, exist_ok=True)
        for generated in sorted((pathlib.Path(tmp) / "graphexec" / "v1").glob("*.py")):
            text = re.sub(r"^from graphexec\.v1 import", "from graphexec.proto.v1 import", generated.read_text(), flags=re.M)
            (out_dir / generated.name).write_text(text)
    (out_dir / "__init__.py").write_text('"""Generated protobuf modules; regenerate with tools/gen_protos.py."""\n')


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "graphexec" / "proto" / "v1")
    generate(parser.parse_args().out)
