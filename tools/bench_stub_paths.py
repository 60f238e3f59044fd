"""Generated gRPC stubs vs graphexec's raw-bytes method tables: the measurement behind
graphexec/rpc/methods.py's choice (no *_pb2_grpc.py in the repository).

Usage: python tools/bench_stub_paths.py [--rounds 5] [--calls 20000]
Generates the Python stubs into a temporary directory, then alternates, in one process, rounds of
`calls` small unary calls (ListDevices) through (a) a generic handler on raw bytes, as the server
and client do, and (b) the generated servicer registration and stub; and rounds of RunCallable
calls answering 8 MiB of fetches, decoded (a) by graphexec.rpc.codec (zero-copy) or (b) by the
stub's protobuf deserializer. Prints per-call medians (and every round) in microseconds.
"""
import argparse
import importlib.util
import pathlib
import re
import statistics
import sys
import tempfile
import time
from concurrent import futures

import grpc
import numpy as np
from grpc_tools import protoc

from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import codec, methods
from graphexec.rpc.tensors import tensor_to_proto

ROOT = pathlib.Path(__file__).resolve().parent.parent
SERVICE = methods.GRAPH_EXEC_SERVICE.full_name
DEVICES = spb.ListDevicesResponse(devices=[spb.DeviceAttributes(name="/device:CPU:0", device_type="CPU")])
FETCHES = [np.ones(1 << 21, np.float32)]  # 8 MiB
BIG_CALLS = 200


def generated_stubs(tmp: str):
    """The service_pb2_grpc module protoc would generate, imported from `tmp`."""
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    if protoc.main(["protoc", f"-I{ROOT / 'protos'}", f"-I{include}", f"--grpc_python_out={tmp}",
                    "graphexec/v1/service.proto"]) != 0:
        sys.exit("protoc failed")
    path = pathlib.Path(tmp) / "graphexec" / "v1" / "service_pb2_grpc.py"
    path.write_text(re.sub(r"^from graphexec\.v1 import", "from graphexec.proto.v1 import", path.read_text(), flags=re.M))
    spec = importlib.util.spec_from_file_location("service_pb2_grpc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RawServicer:
    def list_devices(self, data, context):
        spb.ListDevicesRequest.FromString(data)
        return DEVICES.SerializeToString()

    def run_callable(self, data, context):
        codec.decode_tensor_message(spb.RunCallableRequest, data, "feeds")
        return codec.encode_tensor_message(spb.RunCallableResponse(), "fetches", FETCHES)


def start(register):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)])
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", -1)])


def generic_calls(server):
    raw = RawServicer()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "ListDevices": grpc.unary_unary_rpc_method_handler(raw.list_devices),
        "RunCallable": grpc.unary_unary_rpc_method_handler(raw.run_callable)}),))


def time_calls(call, request, count: int) -> float:
    for _ in range(min(count, 200)):
        call(request)
    start_time = time.perf_counter()
    for _ in range(count):
        call(request)
    return (time.perf_counter() - start_time) / count * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stubs = generated_stubs(tmp)

    class Generated(stubs.GraphExecServiceServicer):
        def ListDevices(self, request, context):
            return DEVICES

        def RunCallable(self, request, context):
            response = spb.RunCallableResponse()
            tensor_to_proto(FETCHES[0], response.fetches.add())
            return response

    small = spb.ListDevicesRequest(session_handle="s" * 32)
    run = spb.RunCallableRequest(session_handle="s", callable_handle="c", request_id=1)
    figures = {key: [] for key in ("small generic", "small generated", "8 MiB generic", "8 MiB generated")}
    for _ in range(args.rounds):
        server, channel = start(generic_calls)
        list_devices = channel.unary_unary(f"/{SERVICE}/ListDevices")
        run_callable = channel.unary_unary(f"/{SERVICE}/RunCallable")
        figures["small generic"].append(time_calls(
            lambda r: spb.ListDevicesResponse.FromString(list_devices(r.SerializeToString())), small, args.calls))
        figures["8 MiB generic"].append(time_calls(
            lambda r: codec.decode_tensor_message(spb.RunCallableResponse, run_callable(r.SerializeToString()),
                                                  "fetches"), run, BIG_CALLS))
        channel.close()
        server.stop(None)
        server, channel = start(lambda s: stubs.add_GraphExecServiceServicer_to_server(Generated(), s))
        stub = stubs.GraphExecServiceStub(channel)
        figures["small generated"].append(time_calls(stub.ListDevices, small, args.calls))
        figures["8 MiB generated"].append(time_calls(stub.RunCallable, run, BIG_CALLS))
        channel.close()
        server.stop(None)
    for key, values in figures.items():
        print(f"{key:16s} median {statistics.median(values):9.1f} us/call   rounds {[round(v, 1) for v in values]}")


if __name__ == "__main__":
    main()
