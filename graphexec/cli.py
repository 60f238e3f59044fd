"""Command line: `graphexec serve` and `graphexec worker` (also `python -m graphexec ...`).

    graphexec serve [--host H] [--port P] [--redis URL] [--device cpu|gpu]
    graphexec worker --redis URL [--device cpu|gpu] [--host H] [--port P] [--advertise HOST:PORT]

`serve` without --redis needs nothing else: it runs an embedded worker (CPU by default) and keeps
plans, graphs, sessions and variables in memory. With --redis, replicas share all of that through
Redis and place runs on live `graphexec worker` processes (it runs none itself). `serve` prints
`graphexec serving on grpc://HOST:PORT` once it listens; `worker` prints
`graphexec worker ID serving on HOST:PORT`. Both bind 127.0.0.1 unless told otherwise: listening on
other interfaces takes an explicit --host (e.g. 0.0.0.0).

Every flag can also come from the environment (the flag wins):

| command | flag          | environment variable        | default                     |
| ------- | ------------- | --------------------------- | --------------------------- |
| serve   | --host        | GRAPHEXEC_HOST              | 127.0.0.1                   |
| serve   | --port        | GRAPHEXEC_PORT              | 7470 (0: any free port)     |
| both    | --redis       | GRAPHEXEC_REDIS_URL         | none (serve: in-memory)     |
| both    | --device      | GRAPHEXEC_DEVICE            | cpu                         |
| serve   | --threads     | GRAPHEXEC_THREADS           | 32 (concurrent RPCs)        |
| worker  | --host        | GRAPHEXEC_WORKER_HOST       | 127.0.0.1                   |
| worker  | --port        | GRAPHEXEC_WORKER_PORT       | 0 (any free port)           |
| worker  | --advertise   | GRAPHEXEC_WORKER_ADVERTISE  | HOST:PORT as bound (1)      |
| worker  | --threads     | GRAPHEXEC_WORKER_THREADS    | 16                          |
| both    | --log-level   | GRAPHEXEC_LOG_LEVEL         | WARNING                     |
| both    | --log-format  | GRAPHEXEC_LOG_FORMAT        | text (or json)              |
| both    | --metrics-port | GRAPHEXEC_METRICS_PORT     | none: no metrics (0: any)   |

(1) Servers reach a worker at the address it registers. With a wildcard --host (0.0.0.0) the default
is this machine's own address (a container's or pod's IP) and the bound port; set --advertise when
servers must use another name (a Service, a NAT).

Clients: `tf.Session("grpc://HOST:PORT")`, or set GRAPHEXEC_TARGET=grpc://HOST:PORT and keep
`tf.Session()`.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading

from graphexec import errors
from graphexec.runtime.store import MemoryStore
from graphexec.runtime.worker import WorkerCore
from graphexec.server import logs
from graphexec.server.pool import LocalWorker, WorkerPool
from graphexec.server.redis_store import RedisStore
from graphexec.server.service import Service
from graphexec.server.servicer import create_server
from graphexec.server.telemetry import Metrics, serve_metrics
from graphexec.server.worker_service import Heartbeat, create_worker_server

DEFAULT_PORT = 7470
# OpenBLAS's threads spin for ~2^28 cycles after every matrix product unless told otherwise; 2^4 lets
# them sleep at once. See _reexec_with_short_blas_spin.
BLAS_SPIN_VARIABLE, BLAS_SPIN = "OPENBLAS_THREAD_TIMEOUT", "4"


def _env(name, default):
    return os.environ.get(name, default)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphexec", description="Remote execution of TF1-style graphs.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the GraphExec API")
    serve.add_argument("--host", default=_env("GRAPHEXEC_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(_env("GRAPHEXEC_PORT", DEFAULT_PORT)))
    serve.add_argument("--redis", default=_env("GRAPHEXEC_REDIS_URL", ""),
                       help="share state through Redis and run on `graphexec worker` processes")
    serve.add_argument("--device", choices=("cpu", "gpu"), default=_env("GRAPHEXEC_DEVICE", "cpu"),
                       help="device of the embedded worker (without --redis)")
    serve.add_argument("--threads", type=int, default=int(_env("GRAPHEXEC_THREADS", 32)))

    worker = commands.add_parser("worker", help="run plans for the servers sharing a Redis")
    worker.add_argument("--redis", default=_env("GRAPHEXEC_REDIS_URL", ""), required="GRAPHEXEC_REDIS_URL" not in
                        os.environ)
    worker.add_argument("--device", choices=("cpu", "gpu"), default=_env("GRAPHEXEC_DEVICE", "cpu"))
    worker.add_argument("--host", default=_env("GRAPHEXEC_WORKER_HOST", "127.0.0.1"))
    worker.add_argument("--port", type=int, default=int(_env("GRAPHEXEC_WORKER_PORT", 0)))
    worker.add_argument("--advertise", default=_env("GRAPHEXEC_WORKER_ADVERTISE", ""),
                        help="address servers use to reach this worker (default: HOST:PORT as bound)")
    worker.add_argument("--threads", type=int, default=int(_env("GRAPHEXEC_WORKER_THREADS", 16)))
    for command in (serve, worker):
        command.add_argument("--log-level", default=_env("GRAPHEXEC_LOG_LEVEL", "WARNING"))
        command.add_argument("--log-format", choices=logs.FORMATS, default=_env("GRAPHEXEC_LOG_FORMAT", "text"))
        command.add_argument("--metrics-port", type=_optional_port, default=_env("GRAPHEXEC_METRICS_PORT", ""),
                             help="serve Prometheus metrics at http://HOST:PORT/metrics (0: any free port)")
    return parser


def _optional_port(text: str) -> int | None:
    return int(text) if text != "" else None


def _metrics(args, host: str) -> Metrics:
    """This process's metrics, served over HTTP (on the gRPC host) when --metrics-port is set."""
    metrics = Metrics()
    if args.metrics_port is not None:
        port = serve_metrics(metrics, host, args.metrics_port)
        print(f"graphexec metrics on http://{host}:{port}/metrics", flush=True)
    return metrics


def _store(redis_url: str, metrics: Metrics):
    return RedisStore(redis_url, metrics) if redis_url else MemoryStore()


def serve(args) -> None:
    metrics = _metrics(args, args.host)
    store = _store(args.redis, metrics)
    local = None if args.redis else LocalWorker(WorkerCore(store, args.device.upper()), metrics)
    pool = WorkerPool(store, local)
    server, port = create_server(Service(store, pool, metrics), f"{args.host}:{args.port}", args.threads)
    server.start()
    print(f"graphexec serving on grpc://{args.host}:{port}", flush=True)
    _wait_for_signal()
    server.stop(grace=1.0).wait()
    pool.close()


def worker(args) -> None:
    metrics = _metrics(args, args.host)
    store = _store(args.redis, metrics)
    core = WorkerCore(store, args.device.upper())
    server, port = create_worker_server(core, args.host, args.port, args.threads, metrics)
    core.address = args.advertise or f"{_reachable_host(args.host)}:{port}"
    server.start()
    heartbeat = Heartbeat(store, core).start()
    devices = ", ".join(d["name"] for d in core.devices())
    print(f"graphexec worker {core.worker_id} ({devices}) serving on {core.address}", flush=True)
    _wait_for_signal()
    heartbeat.stop()
    server.stop(grace=1.0).wait()


def _reachable_host(host: str) -> str:
    """The bound host, or for a wildcard bind this machine's address (a container's or pod's IP)."""
    if host in ("0.0.0.0", "::", "[::]", ""):
        return socket.gethostbyname(socket.gethostname())
    return host


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _reexec_with_short_blas_spin() -> None:
    """Re-execute this command once with a short BLAS spin.

    Why: after each matrix product OpenBLAS's worker threads spin for a long while (about 0.1 s), and
    on a small machine that spinning takes the cores the gRPC threads and other requests need (the MLP
    benchmark on 2 cores: about 200 -> 300 steps/s). OpenBLAS reads the setting only when it loads,
    with numpy, before this module runs; so a server started from the command line sets it and
    starts over. An explicit OPENBLAS_THREAD_TIMEOUT in the environment is left as it is.
    """
    if BLAS_SPIN_VARIABLE in os.environ or not sys.executable:
        return
    os.environ[BLAS_SPIN_VARIABLE] = BLAS_SPIN
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "graphexec", *sys.argv[1:]])


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    if argv is None:  # the command line (python -m graphexec, or the console script), not a caller's argv
        _reexec_with_short_blas_spin()
    logs.configure(args.log_level, args.log_format)
    try:
        {"serve": serve, "worker": worker}[args.command](args)
    except (errors.OpError, OSError) as exc:  # e.g. Redis unreachable, port taken: say so, exit non-zero
        sys.exit(f"graphexec {args.command}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
