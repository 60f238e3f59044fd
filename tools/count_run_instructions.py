"""Instructions per W1 run (c = a + b on float32[3]) in the server and in the client, counted by
valgrind's callgrind, beside a grpcio echo server and client doing the same round trip.

Usage: PYTHONPATH=. python tools/count_run_instructions.py [--runs 400]   (from the repository root:
the client and `python -m graphexec serve` then both run this checkout)
Needs `valgrind` (callgrind_control comes with it). Why: on a shared 2-core machine wall-clock
timings drift 2x within minutes, while instruction counts repeat within about 1%, so a change to the
hot path can be judged in one try. Each side is measured in its own run: the process under
callgrind (about 50x slower) warms up, its counters are zeroed (callgrind_control -z), it serves or
makes `runs` runs, and they are dumped (-d). Counts include gRPC's own threads. Session 3 figures,
server / client: 812k / 400k before the lean path, 619k / 350k after, echo 355k / 224k; session 4,
runs over the API's direct link: 283k / 166k.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
from concurrent import futures

import grpc
import numpy as np

import graphexec as tf

ECHO_METHOD = "/bench.Echo/Echo"
WARM_UP = 100


def serve_echo() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(8))
    echo = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Echo": echo}),))
    print(f"echo serving on {server.add_insecure_port('127.0.0.1:0')}", flush=True)
    server.start()
    server.wait_for_termination()


def start(argv: list, ready: str) -> tuple:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        found = re.search(ready, line)
        if found:
            return process, found.group(1)
    raise RuntimeError(f"{argv} exited before it was ready")


def w1_client(kind: str, target: str):
    """One run of W1 as a function of nothing."""
    if kind == "echo":
        call = grpc.insecure_channel(f"127.0.0.1:{target}").unary_unary(ECHO_METHOD)
        return lambda: call(b"x" * 24)
    graph = tf.Graph()
    with graph.as_default():
        a, b = tf.placeholder(tf.float32, [3]), tf.placeholder(tf.float32, [3])
        c = a + b
    session = tf.Session(target, graph=graph)
    va, vb = np.ones(3, np.float32), np.arange(3, dtype=np.float32)
    return lambda: session.run(c, {a: va, b: vb})


def server_argv(kind: str) -> tuple:
    if kind == "echo":
        return [sys.executable, __file__, "--serve-echo"], r"echo serving on (\d+)"
    # OPENBLAS_THREAD_TIMEOUT set: serve would re-execute itself (graphexec/cli.py), out of callgrind's sight
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    return [sys.executable, "-m", "graphexec", "serve", "--port", "0"], r"serving on (grpc://\S+)"


def total_instructions(prefix: str) -> int:
    """Instructions in the dumps after the zeroing (files prefix.N; prefix itself is the final dump)."""
    total = 0
    for path in glob.glob(prefix + ".*"):
        with open(path) as dump:
            for line in dump:
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
                    break
    return total


def measure(kind: str, side: str, runs: int, folder: str) -> float:
    """Thousands of instructions per run on `side` (server or client) of `kind` (graphexec or echo)."""
    out = os.path.join(folder, f"{kind}-{side}")
    callgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    argv, ready = server_argv(kind)
    if side == "server":
        server, target = start(callgrind + argv, ready)
        run = w1_client(kind, target)
        counted = server.pid
    else:
        server, target = start(argv, ready)
        client = [sys.executable, __file__, "--client", kind, target, str(runs)]
        counted = None
    try:
        if counted is not None:
            for _ in range(WARM_UP):
                run()
            subprocess.run(["callgrind_control", "-z", str(counted)], capture_output=True, check=True)
            for _ in range(runs):
                run()
            subprocess.run(["callgrind_control", "-d", str(counted)], capture_output=True, check=True)
        else:
            subprocess.run(callgrind + client, stderr=subprocess.DEVNULL, check=True)
    finally:
        server.kill()
        server.wait()
    return total_instructions(out) / runs / 1e3


def client_under_callgrind(kind: str, target: str, runs: int) -> None:
    run = w1_client(kind, target)
    for _ in range(WARM_UP):
        run()
    subprocess.run(["callgrind_control", "-z", str(os.getpid())], capture_output=True, check=True)
    for _ in range(runs):
        run()
    subprocess.run(["callgrind_control", "-d", str(os.getpid())], capture_output=True, check=True)
    os._exit(0)  # not the final dump: only the runs' counts are read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=3, metavar=("KIND", "TARGET", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        return serve_echo()
    if args.client:
        return client_under_callgrind(args.client[0], args.client[1], int(args.client[2]))
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("graphexec", "echo"):
            server = measure(kind, "server", args.runs, folder)
            client = measure(kind, "client", args.runs, folder)
            print(f"{kind:9s}  server {server:6.0f}k  client {client:6.0f}k instructions per run", flush=True)


if __name__ == "__main__":
    main()
