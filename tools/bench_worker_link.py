"""Server -> worker transports, echo only: the measurement behind graphexec/server/direct.py.

Usage: python tools/bench_worker_link.py [--rounds 5] [--calls 2000]
Starts an echo process serving (a) a gRPC unary method on raw bytes, called blocking as pool._Lane
calls RunPlan; (b) a gRPC bidirectional stream, one persistent stream, a reply per request (c) the same,
with a reader thread handing replies to waiting callers by id (what multiplexing calls on one stream
needs); (d) length-prefixed frames on a TCP socket, one call at a time per connection, as direct.py.
Rounds alternate the order, in one run; for a small (100 B) and a W3-sized (406 KB) message prints
medians of the rounds' p50 latency and CPU per call of both processes, in microseconds.
"""
import argparse
import os
import queue
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc

OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
FRAME = struct.Struct("<QI")


def serve(port: int, frame_port: int) -> None:
    def echo_stream(requests, context):
        yield from requests

    handler = grpc.method_handlers_generic_handler("echo.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(lambda request, context: request),
        "Stream": grpc.stream_stream_rpc_method_handler(echo_stream)})
    server = grpc.server(futures.ThreadPoolExecutor(8), options=OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    listener = socket.create_server(("127.0.0.1", frame_port))

    def connection(conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = conn.makefile("rb")
        while len(head := reader.read(FRAME.size)) == FRAME.size:
            conn.sendall(head + reader.read(FRAME.unpack(head)[1]))

    while True:
        threading.Thread(target=connection, args=(listener.accept()[0],), daemon=True).start()


class Stream:
    def __init__(self, channel):
        self.requests = queue.SimpleQueue()
        self.replies = channel.stream_stream("/echo.Echo/Stream")(iter(self.requests.get, None))

    def __call__(self, data):
        self.requests.put(data)
        return next(self.replies)


class MultiplexedStream:
    def __init__(self, channel):
        self.requests, self.waiting, self.count = queue.SimpleQueue(), {}, 0
        replies = channel.stream_stream("/echo.Echo/Stream")(iter(self.requests.get, None))
        threading.Thread(target=self._read, args=(replies,), daemon=True).start()

    def _read(self, replies):
        for reply in replies:
            slot = self.waiting.pop(int.from_bytes(reply[:8], "little"))
            slot[1] = reply
            slot[0].set()

    def __call__(self, data):
        self.count += 1
        slot = self.waiting[self.count] = [threading.Event(), None]
        self.requests.put(self.count.to_bytes(8, "little") + data)
        slot[0].wait()
        return slot[1]


class Frames:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader, self.count = self.sock.makefile("rb"), 0

    def __call__(self, data):
        self.count += 1
        self.sock.sendall(FRAME.pack(self.count, len(data)) + data)
        return self.reader.read(FRAME.unpack(self.reader.read(FRAME.size))[1])


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    ports = [str(socket.create_server(("127.0.0.1", 0)).getsockname()[1]) for _ in range(2)]  # closed again
    echo = subprocess.Popen([sys.executable, __file__, "serve", *ports])
    try:
        time.sleep(2)
        channel = grpc.insecure_channel(f"127.0.0.1:{ports[0]}", options=OPTIONS)
        unary = channel.unary_unary("/echo.Echo/Unary")
        ways = {"grpc unary (blocking)": lambda data: unary(data, timeout=10), "grpc stream": Stream(channel),
                "grpc stream, multiplexed": MultiplexedStream(channel), "frames on a socket": Frames(int(ports[1]))}
        for size in (100, 406 << 10):
            data, calls = os.urandom(size), args.calls if size < 4096 else max(args.calls // 7, 50)
            results = {name: [] for name in ways}
            for number in range(args.rounds):
                for name in (list(ways) if number % 2 == 0 else list(ways)[::-1]):
                    call = ways[name]
                    for _ in range(50):
                        call(data)
                    cpu, echo_cpu, latencies = time.process_time(), cpu_seconds(echo.pid), []
                    for _ in range(calls):
                        started = time.perf_counter()
                        call(data)
                        latencies.append(time.perf_counter() - started)
                    used = time.process_time() - cpu + cpu_seconds(echo.pid) - echo_cpu
                    results[name].append((statistics.median(latencies), used / calls))
            for name, rounds in results.items():
                print(f"{size:7d} B  {name:25s} p50 {statistics.median(r[0] for r in rounds) * 1e6:6.0f} us   "
                      f"CPU/call (both processes) {statistics.median(r[1] for r in rounds) * 1e6:6.0f} us")
    finally:
        echo.kill()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
