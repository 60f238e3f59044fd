"""A shared server under load: N concurrent training clients (and optionally many idle Run streams)
against `serve --redis` with 2 workers, TLS and tokens on; reports errors, runs/s and the server's RSS.

    python -m bench.shared_load [--seconds 60] [--clients 64] [--idle-streams 1000]

Starts its own Redis, workers and server on 127.0.0.1 (real processes, a fresh CA and tokens in a
temporary folder). The goal (issue 11): 0 errors, and the server's RSS at the end within 20% of its
RSS after the first 10 s, with and without the idle streams. tests/integration/test_limits_load.py
runs a short version of the same load through `run_load`.
"""
from __future__ import annotations

import argparse
import json
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

import graphexec as tf
from bench import procs
from graphexec import errors
from graphexec.rpc import methods, tls

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LoadReport:
    runs: int = 0
    errors: list = field(default_factory=list)
    rss_mib: list = field(default_factory=list)  # (seconds since the start, server RSS in MiB)

    def rss_growth(self, after_s: float) -> float:
        """The server's RSS at the end over its RSS at `after_s` seconds."""
        base = next(rss for t, rss in self.rss_mib if t >= after_s)
        return self.rss_mib[-1][1] / base


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) / 1024


def _model(seed: int):
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        x = tf.placeholder(tf.float32, [16, 8], name="x")
        y = tf.placeholder(tf.float32, [16, 1], name="y")
        w = tf.Variable(tf.random_normal([8, 1], stddev=0.1), name="w")
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - y))
        train = tf.train.GradientDescentOptimizer(0.01).minimize(loss)
        init = tf.global_variables_initializer()
    return graph, x, y, loss, train, init


def _client(target: str, index: int, stop: threading.Event, report: LoadReport, lock: threading.Lock) -> None:
    graph, x, y, loss, train, init = _model(index)
    rng = np.random.default_rng(index)
    feeds = {x: rng.normal(size=(16, 8)).astype(np.float32), y: rng.normal(size=(16, 1)).astype(np.float32)}
    try:
        with tf.Session(target, graph=graph, config=tf.ConfigProto(container=f"load-{index}")) as sess:
            sess.run(init)
            while not stop.is_set():
                sess.run([train, loss], feeds)
                with lock:
                    report.runs += 1
    except errors.OpError as exc:
        with lock:
            report.errors.append(f"client {index}: {type(exc).__name__}: {exc.message}")


class IdleStreams:
    """`count` Run streams that each sent one malformed request, got its answer, and now send nothing."""

    def __init__(self, target: str, count: int, per_channel: int = 250):
        address, secure = target.partition("://")[2], target.startswith("grpcs://")
        metadata = tls.bearer_metadata() or None
        self.channels, self.requests, self.calls = [], [], []
        for i in range(count):
            if i % per_channel == 0:
                options = [("graphexec.bench.connection", i)]
                self.channels.append(grpc.secure_channel(address, tls.client_channel_credentials(), options=options)
                                     if secure else grpc.insecure_channel(address, options=options))
            requests = queue.Queue()
            requests.put(b"\xff")
            run = methods.client_calls(self.channels[-1], methods.GRAPH_EXEC_SERVICE)["Run"]
            self.requests.append(requests)
            self.calls.append(run(iter(requests.get, None), metadata=metadata))
        for call in self.calls:
            next(call)  # its answer: the server holds this stream open

    def close(self) -> None:
        for requests, call in zip(self.requests, self.calls):
            requests.put(None)
            call.cancel()
        for channel in self.channels:
            channel.close()


def run_load(target: str, seconds: float, clients: int, server_pid: int, sample_s: float = 1.0) -> LoadReport:
    """`clients` training sessions running as fast as they can for `seconds`, sampling the server's RSS."""
    report, lock, stop = LoadReport(), threading.Lock(), threading.Event()
    threads = [threading.Thread(target=_client, args=(target, i, stop, report, lock), daemon=True)
               for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while time.monotonic() - started < seconds:
        time.sleep(sample_s)
        report.rss_mib.append((round(time.monotonic() - started, 1), round(rss_mib(server_pid), 1)))
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    return report


def _start(argv, ready: str, log, env=None) -> subprocess.Popen:
    """The process, once a line of its output contains `ready` (kept as `process.ready_line`)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in process.stdout:
        log.write(line)
        if ready in line:
            process.ready_line = line
            threading.Thread(target=lambda: shutil.copyfileobj(process.stdout, log), daemon=True).start()
            return process
    raise RuntimeError(f"{argv[:4]} exited before it was ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--idle-streams", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    import security_setup  # noqa: PLC0415 - the tests' CA and tokens helpers, for this script only

    folder = Path(tempfile.mkdtemp(prefix="shared-load-"))
    pki = security_setup.make_pki(folder / "pki")
    tokens = security_setup.write_tokens(folder)
    secret = security_setup.write_secret(folder, "worker-secret", security_setup.WORKER_SECRET)
    port = _free_port()
    processes = []
    with open(folder / "log.txt", "w") as log:
        try:
            processes.append(_start(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                                    "Ready to accept connections", log, procs.redis_env()))
            redis = f"redis://127.0.0.1:{port}"
            graphexec = [sys.executable, "-m", "graphexec"]
            for _ in range(2):
                processes.append(_start([*graphexec, "worker", "--redis", redis, "--worker-secret-file", str(secret)],
                                        "serving on", log))
            server = _start([*graphexec, "serve", "--port", "0", "--redis", redis, "--worker-secret-file",
                             str(secret), "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                             "--auth-tokens", str(tokens)], "serving on", log)
            processes.append(server)
            target = server.ready_line.rsplit("serving on ", 1)[1].split()[0]
            with security_setup.client_env(token=security_setup.ALICE_TOKEN, tls_ca=pki / "ca.pem"):
                time.sleep(2.0)  # the workers' registrations reach the server
                streams = IdleStreams(target, args.idle_streams) if args.idle_streams else None
                report = run_load(target, args.seconds, args.clients, server.pid)
                if streams:
                    streams.close()
        finally:
            for process in reversed(processes):
                process.kill()
    print(json.dumps({"clients": args.clients, "idle_streams": args.idle_streams, "seconds": args.seconds,
                      "runs": report.runs, "runs_per_s": round(report.runs / args.seconds, 1),
                      "errors": len(report.errors), "first_errors": report.errors[:3],
                      "rss_mib_at_10s": next(r for t, r in report.rss_mib if t >= 10), "rss_mib_end": report.rss_mib[-1][1],
                      "rss_growth_after_10s": round(report.rss_growth(10.0), 3)}, indent=1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
