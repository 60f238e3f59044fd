"""The floor: a minimal grpcio server that returns the bytes it is sent.

Generic handlers, no protobuf, message limits raised to 2 GiB. The W1/W4 analogue sends two
float32[3] (24 bytes), W2 sends 64 MiB, W7 streams W1's payload over one stream-stream call.
`python -m bench.systems.grpc_echo` is the server process.
"""

import sys
from concurrent import futures

import grpc
import numpy as np

from bench import procs
from bench.systems import NotApplicable, System

SERVICE = "bench.Echo"
MESSAGE_LIMIT = 2**31 - 1
OPTIONS = [("grpc.max_send_message_length", MESSAGE_LIMIT),
           ("grpc.max_receive_message_length", MESSAGE_LIMIT)]


def serve():
    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(lambda request, context: request),
        "Stream": grpc.stream_stream_rpc_method_handler(lambda requests, context: requests),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), handlers=[handler], options=OPTIONS)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"echo serving on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


class GrpcEcho(System):
    name = "grpc_echo"
    computes_results = False

    def __init__(self, address=None):
        self.address = address
        self._server = None
        self._channel = None

    def start(self):
        self._server = procs.ServerProcess(
            "echo-server", [sys.executable, "-m", "bench.systems.grpc_echo"], ready=r"serving on (\S+)")
        self.address = self._server.match.group(1)

    def _stub(self, kind):
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address, options=OPTIONS)
        if kind == "Unary":
            return self._channel.unary_unary(f"/{SERVICE}/Unary")
        return self._channel.stream_stream(f"/{SERVICE}/Stream")

    def close(self):
        if self._channel:
            self._channel.close()
        if self._server:
            self._server.stop()

    def client_config(self):
        return {"address": self.address}

    @classmethod
    def connect(cls, config):
        return cls(config["address"])

    def w8_config(self, batching):
        raise NotApplicable("an echo server serves no model")

    def build_w1(self):
        unary = self._stub("Unary")
        return lambda a, b: np.frombuffer(unary(a.tobytes() + b.tobytes()), np.float32)

    def build_w2(self):
        unary = self._stub("Unary")
        return lambda x: np.frombuffer(unary(x.tobytes()), np.float32)

    def build_w7(self):
        stream = self._stub("Stream")

        def run(a, b, n):
            payload = a.tobytes() + b.tobytes()
            return (np.frombuffer(reply, np.float32) for reply in stream(payload for _ in range(n)))

        return run


if __name__ == "__main__":
    serve()
