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
| serve   | --threads     | GRAPHEXEC_THREADS           | 32 (runs at once)           |
| worker  | --host        | GRAPHEXEC_WORKER_HOST       | 127.0.0.1                   |
| worker  | --port        | GRAPHEXEC_WORKER_PORT       | 0 (any free port)           |
| worker  | --advertise   | GRAPHEXEC_WORKER_ADVERTISE  | HOST:PORT as bound (1)      |
| worker  | --threads     | GRAPHEXEC_WORKER_THREADS    | 16                          |
| both    | --log-level   | GRAPHEXEC_LOG_LEVEL         | WARNING                     |
| both    | --tls-cert    | GRAPHEXEC_TLS_CERT          | none: plaintext             |
| both    | --tls-key     | GRAPHEXEC_TLS_KEY           | none                        |
| both    | --tls-client-ca | GRAPHEXEC_TLS_CLIENT_CA   | none: no client certificates|
| serve   | --tls-ca      | GRAPHEXEC_TLS_CA            | system roots (TLS workers)  |
| serve   | --auth-tokens | GRAPHEXEC_AUTH_TOKENS_FILE  | none: one tenant            |
| both    | --worker-secret-file | GRAPHEXEC_WORKER_SECRET_FILE | none                 |
| both    | --redis-password-file | GRAPHEXEC_REDIS_PASSWORD_FILE | the URL's          |
| both    | --insecure    | GRAPHEXEC_INSECURE=1        | off (2)                     |
| serve   | --no-reflection | GRAPHEXEC_NO_REFLECTION=1 | reflection on               |
| both    | limits (3)    | GRAPHEXEC_<FLAG>, e.g. GRAPHEXEC_MAX_STREAMS | see docs/configuration.md |

(1) Servers reach a worker at the address it registers. With a wildcard --host (0.0.0.0) the default
is this machine's own address (a container's or pod's IP) and the bound port; set --advertise when
servers must use another name (a Service, a NAT).

(2) A non-loopback --host needs TLS, --auth-tokens (serve) and --worker-secret-file (worker, and serve
with --redis); without them the command refuses to start, naming what is missing, unless --insecure.

(3) The limits (graphexec/server/limits.py, README "Security"): serve --max-message-bytes,
--max-graph-nodes, --max-graph-bytes, --max-string-bytes, --run-memory-bytes, --max-streams,
--max-streams-per-connection, --stream-idle-timeout, --queue-depth, --cache-bytes, --max-sessions-per-tenant; worker (and embedded serve)
--memory-limit. Sizes take K/M/G/Ki/Mi/Gi suffixes.

Clients: `tf.Session("grpc://HOST:PORT")` (`grpcs://` over TLS), or set GRAPHEXEC_TARGET=grpc://HOST:PORT
and keep `tf.Session()`; GRAPHEXEC_TOKEN is their tenant's token.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import resource
import signal
import socket
import sys
import threading
from dataclasses import dataclass

from graphexec import errors
from graphexec.rpc import tls
from graphexec.runtime.store import MemoryStore
from graphexec.runtime.worker import WorkerCore
from graphexec.server.auth import TokenTable, WorkerSecret, read_secret
from graphexec.server.limits import Limits
from graphexec.server.pool import LocalWorker, WorkerPool
from graphexec.server.readiness import Readiness
from graphexec.server.redis_store import RedisStore
from graphexec.server.service import Service
from graphexec.server.servicer import create_server
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
        _add_security_flags(command, command is serve)
        _add_limit_flags(command, command is serve)
    return parser


# -- limits (README "Security", graphexec/server/limits.py) ----------------------------------------
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*$", re.IGNORECASE)


def parse_size(text) -> int:
    """Bytes: 1048576, 1M (10**6), 1Mi or 1MiB (2**20)."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"not a size: {text!r} (e.g. 64MiB, 2G, 1048576)")
    number, unit, binary = match.groups()
    power = "KMGT".find(unit.upper()) + 1 if unit else 0
    return int(float(number) * (1024 if binary else 1000) ** power)


def _add_limit_flags(command, is_server: bool) -> None:
    """Values stay text here and are parsed by _limits (a bad one is a one-line error at start)."""
    group = command.add_argument_group("limits")
    group.add_argument("--memory-limit", default=_env("GRAPHEXEC_MEMORY_LIMIT", "0"),
                       help="address-space limit of this process (RLIMIT_AS), so a run that allocates too much "
                            "fails RESOURCE_EXHAUSTED instead of killing it; 0: 80%% of physical memory; CPU only")
    if not is_server:
        return
    d = Limits()
    for flag, default, what in (
            ("--max-message-bytes", _env("GRAPHEXEC_MAX_MESSAGE_BYTES", d.max_message_bytes), "largest message"),
            ("--max-graph-nodes", _env("GRAPHEXEC_MAX_GRAPH_NODES", d.max_graph_nodes), "nodes of a graph"),
            ("--max-graph-bytes", _env("GRAPHEXEC_MAX_GRAPH_BYTES", d.max_graph_bytes), "bytes of a graph upload"),
            ("--max-string-bytes", _env("GRAPHEXEC_MAX_STRING_BYTES", d.max_string_bytes), "container names"),
            ("--run-memory-bytes", _env("GRAPHEXEC_RUN_MEMORY_BYTES", d.run_memory_bytes),
             "statically known tensors of a run"),
            ("--max-streams", _env("GRAPHEXEC_MAX_STREAMS", d.max_streams), "open Run streams"),
            ("--max-streams-per-connection", _env("GRAPHEXEC_MAX_STREAMS_PER_CONNECTION",
                                                  d.max_streams_per_connection), "concurrent calls per connection"),
            ("--stream-idle-timeout", _env("GRAPHEXEC_STREAM_IDLE_TIMEOUT", d.stream_idle_timeout_s),
             "seconds before an idle Run stream is closed"),
            ("--queue-depth", _env("GRAPHEXEC_QUEUE_DEPTH", d.queue_depth), "runs waiting beyond --threads"),
            ("--cache-bytes", _env("GRAPHEXEC_CACHE_BYTES", d.cache_bytes),
             "each in-memory cache: graphs, plans, and (without --redis) uploads"),
            ("--max-sessions-per-tenant", _env("GRAPHEXEC_MAX_SESSIONS_PER_TENANT", d.max_sessions_per_tenant),
             "open sessions of one tenant")):
        group.add_argument(flag, default=str(default), help=f"{what} (default {default})")


def _limits(args) -> Limits:
    return Limits(max_message_bytes=parse_size(args.max_message_bytes), max_graph_nodes=int(args.max_graph_nodes),
                  max_graph_bytes=parse_size(args.max_graph_bytes), max_string_bytes=parse_size(args.max_string_bytes),
                  run_memory_bytes=parse_size(args.run_memory_bytes), max_streams=int(args.max_streams),
                  max_streams_per_connection=int(args.max_streams_per_connection),
                  stream_idle_timeout_s=float(args.stream_idle_timeout), threads=args.threads,
                  queue_depth=int(args.queue_depth), cache_bytes=parse_size(args.cache_bytes),
                  max_sessions_per_tenant=int(args.max_sessions_per_tenant))


def _limit_memory(text: str, device: str) -> None:
    """Cap this process's address space, so numpy's allocations beyond it raise MemoryError (answered
    RESOURCE_EXHAUSTED) rather than the kernel's OOM killer ending the process. Not on GPU: CUDA maps
    far more address space than it uses."""
    limit = parse_size(text)
    if device != "cpu":
        return
    if not limit:
        limit = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.8)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


# -- security: TLS, tenants' tokens, the worker secret (README "Security") ----------------------------
def _add_security_flags(command, is_server: bool) -> None:
    group = command.add_argument_group("security")
    group.add_argument("--tls-cert", default=_env("GRAPHEXEC_TLS_CERT", ""), help="serve TLS with this PEM certificate")
    group.add_argument("--tls-key", default=_env("GRAPHEXEC_TLS_KEY", ""), help="the certificate's PEM key")
    group.add_argument("--tls-client-ca", default=_env("GRAPHEXEC_TLS_CLIENT_CA", ""),
                       help="require client certificates signed by this CA (mutual TLS)")
    group.add_argument("--worker-secret-file", default=_env("GRAPHEXEC_WORKER_SECRET_FILE", ""),
                       help="secret shared by servers and workers: authenticates RunPlan, signs registrations")
    group.add_argument("--redis-password-file", default=_env("GRAPHEXEC_REDIS_PASSWORD_FILE", ""),
                       help="Redis password (else the one in the --redis URL, if any)")
    group.add_argument("--insecure", action="store_true", default=_env("GRAPHEXEC_INSECURE", "") == "1",
                       help="listen on a non-loopback address without TLS and authentication anyway")
    if is_server:
        group.add_argument("--tls-ca", default=_env("GRAPHEXEC_TLS_CA", ""),
                           help="CA of the workers' certificates, for workers that serve TLS (default: system roots)")
        group.add_argument("--auth-tokens", default=_env("GRAPHEXEC_AUTH_TOKENS_FILE", ""),
                           help="file of `TENANT TOKEN` lines: callers must send a token; tenants are isolated")
        group.add_argument("--no-reflection", action="store_true", default=_env("GRAPHEXEC_NO_REFLECTION", "") == "1",
                           help="do not serve gRPC reflection")


@dataclass
class Security:
    credentials: object = None  # grpc.ServerCredentials, or None for plaintext
    tokens: TokenTable | None = None
    worker_secret: WorkerSecret | None = None
    redis_password: str | None = None
    worker_channel: object = None  # how servers dial workers that serve TLS


def _security(args, is_server: bool) -> Security:
    """The security settings of the command line, refusing (ValueError, one line) a non-loopback listener
    that anyone who reaches it could use."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
    security = Security()
    if args.tls_cert:
        security.credentials = tls.server_credentials(args.tls_cert, args.tls_key, args.tls_client_ca)
    if is_server and args.auth_tokens:
        security.tokens = TokenTable.load(args.auth_tokens)
    if args.worker_secret_file:
        security.worker_secret = WorkerSecret(read_secret(args.worker_secret_file, "worker secret"))
    if args.redis_password_file:
        security.redis_password = read_secret(args.redis_password_file, "Redis password")
    if is_server and args.redis:
        security.worker_channel = tls.channel_credentials(args.tls_ca, args.tls_cert, args.tls_key)
    missing = [what for what, given in (("TLS (--tls-cert/--tls-key)", args.tls_cert),
                                        ("tokens (--auth-tokens)", not is_server or args.auth_tokens),
                                        ("a worker secret (--worker-secret-file)",
                                         args.worker_secret_file or (is_server and not args.redis))) if not given]
    if missing and not args.insecure and not _is_loopback(args.host):
        raise ValueError(f"refusing to listen on {args.host} without {' and '.join(missing)}: anyone who reaches it "
                         f"could run graphs and read or overwrite variables; give them, or --insecure to accept that")
    return security


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _store(redis_url: str, password: str | None = None, cache_bytes: int | None = None):
    if redis_url:
        return RedisStore(redis_url, password)
    return MemoryStore(cache_bytes) if cache_bytes else MemoryStore()


def serve(args) -> None:
    security = _security(args, is_server=True)
    limits = _limits(args)
    store = _store(args.redis, security.redis_password, limits.cache_bytes)
    local = None
    if not args.redis:
        _limit_memory(args.memory_limit, args.device)  # the embedded worker's kernels run in this process
        local = LocalWorker(WorkerCore(store, args.device.upper()))
    pool = WorkerPool(store, local, security.worker_secret, security.worker_channel)
    readiness = Readiness(store, pool).start()
    server, port = create_server(Service(store, pool, limits), f"{args.host}:{args.port}", limits, security.tokens,
                                 security.credentials, reflect=not args.no_reflection, health=readiness.servicer)
    server.start()
    scheme = "grpcs" if security.credentials else "grpc"
    print(f"graphexec serving on {scheme}://{args.host}:{port}", flush=True)
    _wait_for_signal()
    readiness.stop()
    server.stop(grace=1.0).wait()
    pool.close()


def worker(args) -> None:
    security = _security(args, is_server=False)
    _limit_memory(args.memory_limit, args.device)
    store = _store(args.redis, security.redis_password)
    core = WorkerCore(store, args.device.upper())
    server, port = create_worker_server(core, args.host, args.port, args.threads, security.worker_secret,
                                        security.credentials)
    core.address = args.advertise or f"{_reachable_host(args.host)}:{port}"
    core.tls = security.credentials is not None
    server.start()
    heartbeat = Heartbeat(store, core, security.worker_secret).start()
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
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        {"serve": serve, "worker": worker}[args.command](args)
    except (errors.OpError, OSError, ValueError) as exc:  # e.g. Redis unreachable, port taken, a bad tokens file
        sys.exit(f"graphexec {args.command}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
