"""Command line: `graphexec serve` and `graphexec worker` (also `python -m graphexec ...`).

    graphexec serve [--host H] [--port P] [--redis URL] [--device cpu|gpu]
    graphexec worker --redis URL [--device cpu|gpu] [--host H] [--port P] [--advertise HOST:PORT]

`serve` without --redis needs nothing else: it runs an embedded worker (CPU by default) and keeps
plans, graphs, sessions and variables in memory. With --redis, replicas share all of that through
Redis and place runs on live `graphexec worker` processes (it runs none itself). `serve` prints
`graphexec serving on grpc://HOST:PORT` once it listens; `worker` prints
`graphexec worker ID serving on HOST:PORT`. Both bind 127.0.0.1 unless told otherwise: listening on
other interfaces takes an explicit --host (e.g. 0.0.0.0).

Every flag can also come from an environment variable (the flag wins). SETTINGS below is the one table
of flags, variables and defaults: `--help` prints it, and docs/configuration.md repeats it (a test holds
them equal). `graphexec --version` prints the installed version.

Clients: `tf.Session("grpc://HOST:PORT")` (`grpcs://` over TLS), or set GRAPHEXEC_TARGET=grpc://HOST:PORT
and keep `tf.Session()`; GRAPHEXEC_TOKEN is their tenant's token.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import ipaddress
import logging
import os
import re
import resource
import signal
import socket
import sys
import threading
from dataclasses import dataclass, fields

import graphexec
from graphexec import errors
from graphexec.rpc import tls
from graphexec.runtime import blas, compiled, conv_library, intra_op
from graphexec.runtime.store import MemoryStore
from graphexec.runtime.worker import WorkerCore
from graphexec.server import direct, logs, supervisor, worker_runs
from graphexec.server.auth import TokenTable, WorkerSecret, read_secret
from graphexec.server.limits import Limits
from graphexec.server.pool import LocalWorker, WorkerPool
from graphexec.server.readiness import Readiness
from graphexec.server.redis_store import RedisStore
from graphexec.server.service import Service
from graphexec.server.servicer import create_server
from graphexec.server.telemetry import Metrics, serve_metrics
from graphexec.runtime.tuning import freeze_startup_objects, keep_freed_memory, server_tunables
from graphexec.server.worker_service import Heartbeat, create_worker_server

log = logging.getLogger("graphexec.cli")
DEFAULT_PORT = 7470
# OpenBLAS's threads spin for ~2^28 cycles after every matrix product unless told otherwise; 2^4 lets
# them sleep at once. See _reexec_with_process_settings.
BLAS_SPIN_VARIABLE, BLAS_SPIN = "OPENBLAS_THREAD_TIMEOUT", "4"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDIS_URL_FORMS = "redis://HOST:6379/0, rediss://HOST:PORT/DB (TLS) or unix:///PATH/redis.sock"
_LIMITS = Limits()  # the limits' defaults


def _optional_port(text: str) -> int | None:
    return int(text) if text != "" else None


def _switch(text: str) -> bool:
    """A switch's variable: "1" turns it on."""
    return text == "1"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*$", re.IGNORECASE)


def parse_size(text) -> int:
    """Bytes: 1048576, 1M (10**6), 1Mi or 1MiB (2**20)."""
    match = _SIZE.match(str(text))
    if not match:
        # An ArgumentTypeError's message is what argparse prints for a bad flag (a ValueError's is not).
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64MiB, 2G, 1048576)")
    number, unit, binary = match.groups()
    power = "KMGT".find(unit.upper()) + 1 if unit else 0
    return int(float(number) * (1024 if binary else 1000) ** power)


@dataclass(frozen=True)
class Setting:
    """One flag of `serve` and/or `worker`, the environment variable that sets it, and its default."""

    command: str  # "serve", "worker" or "both"
    flag: str
    variable: str
    default: str  # parsed like a command-line value
    shown_default: str  # the default as --help and docs/configuration.md state it
    help: str
    type: type = str
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    switch: bool = False  # a flag without a value; its variable turns it on with "1"

    def commands(self) -> tuple[str, ...]:
        return ("serve", "worker") if self.command == "both" else (self.command,)


SETTINGS = (
    Setting("serve", "--host", "GRAPHEXEC_HOST", "127.0.0.1", "127.0.0.1",
            "address to listen on (0.0.0.0: every interface)"),
    Setting("serve", "--port", "GRAPHEXEC_PORT", str(DEFAULT_PORT), f"{DEFAULT_PORT} (0: any free port)",
            "port of the GraphExec API", int),
    Setting("serve", "--direct-port", "GRAPHEXEC_DIRECT_PORT", "0", "0 (any free port; -1: none)",
            "port of the direct link Python clients send their runs over (framed RunCallable/RunStep on TCP, "
            "with the API's TLS and tokens; announced by CreateSession, dialled on the host the client "
            "reached); -1: every call over gRPC", int, metavar="PORT"),
    Setting("both", "--redis", "GRAPHEXEC_REDIS_URL", "",
            "none (serve: in-memory state and an embedded worker; worker: required)",
            f"Redis URL ({REDIS_URL_FORMS}); serve: share state through it and run on `graphexec worker` "
            "processes", metavar="URL"),
    Setting("both", "--device", "GRAPHEXEC_DEVICE", "cpu", "cpu",
            "device to run on (serve: of the embedded worker, without --redis)", str.lower, ("cpu", "gpu")),
    Setting("serve", "--threads", "GRAPHEXEC_THREADS", str(_LIMITS.threads),
            f"{_LIMITS.threads} (runs at once; more wait in the queue)",
            "runs served at once (Run streams and other calls have threads of their own)", int, metavar="N"),
    # Dynamic batching (graphexec/server/batching.py, docs/operations.md)
    Setting("serve", "--max-batch-size", "GRAPHEXEC_MAX_BATCH_SIZE", "0", "0: off (every run alone)",
            "dynamic batching: concurrent runs of one row-wise plan run as one kernel call of up to N rows "
            "(dimension 0)", int, metavar="N"),
    Setting("serve", "--max-batch-delay-us", "GRAPHEXEC_MAX_BATCH_DELAY_US", "0",
            "0: batch what queued while the previous batch ran",
            "microseconds a batch waits for more runs before it runs unfull", int, metavar="US"),
    Setting("worker", "--host", "GRAPHEXEC_WORKER_HOST", "127.0.0.1", "127.0.0.1",
            "address to listen on (0.0.0.0: every interface)"),
    Setting("worker", "--port", "GRAPHEXEC_WORKER_PORT", "0", "0 (any free port)", "port of the Worker API", int),
    Setting("worker", "--advertise", "GRAPHEXEC_WORKER_ADVERTISE", "", "HOST:PORT as bound",
            "address servers dial to reach this worker; with a wildcard --host the default is this machine's "
            "own address (a container's or pod's IP): set it when servers must use another name (a "
            "Service, a NAT)", metavar="HOST:PORT"),
    Setting("worker", "--run-port", "GRAPHEXEC_WORKER_RUN_PORT", "-1", "-1: none (0: any free port)",
            "take clients' runs here too, one hop shorter than through a server (the API's direct link, with "
            "--auth-tokens, TLS and the run limits, which must equal the servers' for them to send clients "
            "here; graphexec/server/worker_runs.py)", int, metavar="PORT"),
    Setting("worker", "--threads", "GRAPHEXEC_WORKER_THREADS", "16", "16", "plan runs served at once", int, metavar="N"),
    Setting("worker", "--direct-port", "GRAPHEXEC_WORKER_DIRECT_PORT", "0", "0 (any free port; -1: none)",
            "port of the direct link servers run plans over (framed RunPlan on TCP, with the Worker API's TLS "
            "and worker secret; announced in the registration, on the advertised host); -1: servers use the "
            "Worker API", int, metavar="PORT"),
    Setting("both", "--blas-threads", "GRAPHEXEC_BLAS_THREADS", "1", "1 (0: the BLAS library's own default)",
            "threads each matrix product may use: more helps only one large product at a time on idle cores "
            "(graphexec/runtime/tuning.py)", int, metavar="N"),
    Setting("both", "--intra-op-threads", "GRAPHEXEC_INTRA_OP_THREADS", "0", "0 (the cores this process may use)",
            "threads one large kernel (a convolution, a large matrix product) is split over, each part a "
            "one-thread BLAS call; used while --blas-threads is 1 (graphexec/runtime/intra_op.py)", int,
            metavar="N"),
    Setting("both", "--intra-op-spin-us", "GRAPHEXEC_INTRA_OP_SPIN_US", "1000", "1000 (0: block at once)",
            "microseconds an intra-op thread spins, without the GIL, before it blocks: a helper waiting for the next "
            "part, a caller for its helpers' (compiled by numba; without it they block at once). Waking a blocked "
            "thread costs 50-230 us on some VMs (graphexec/runtime/spin_wait.py)", float, metavar="US"),
    Setting("both", "--conv-library", "GRAPHEXEC_CONV_LIBRARY", "auto", "auto (oneDNN when torch is installed)",
            "float32 convolutions, max-pooling and large products (>= 2^27 multiply-adds, once torch is loaded) "
            "on the CPU: oneDNN through PyTorch's CPU build (auto: "
            "when torch imports, at the first convolution; torch: loaded at start, required), or graphexec's "
            "own im2col + BLAS kernels (numpy) (graphexec/runtime/conv_library.py)",
            str.lower, conv_library.CHOICES),
    Setting("both", "--compiled-kernels", "GRAPHEXEC_COMPILED_KERNELS", "auto", "auto (numba when it is installed)",
            "one-pass loops compiled by numba, same bits as the kernels they stand for: optimizer updates "
            "(Adam, RMSProp, momentum on 4096 or more elements), relu and its gradient (4096 or more) and "
            "max-pool gradients of windows apart "
            "(auto: compiled in the background at first use, the other kernels meanwhile; numba: "
            "compiled at start, required), or none (numpy) (graphexec/runtime/compiled.py)",
            str.lower, compiled.CHOICES),
    Setting("both", "--log-level", "GRAPHEXEC_LOG_LEVEL", "WARNING", "WARNING",
            f"logging threshold: {', '.join(LOG_LEVELS)}", str.upper, LOG_LEVELS, metavar="LEVEL"),
    Setting("both", "--log-format", "GRAPHEXEC_LOG_FORMAT", "text", "text",
            "log lines as text, or as one JSON object each", str.lower, logs.FORMATS),
    Setting("both", "--metrics-port", "GRAPHEXEC_METRICS_PORT", "", "none: no metrics endpoint (0: any free port)",
            "serve Prometheus metrics at http://HOST:PORT/metrics", _optional_port, metavar="PORT"),
    # Security (README, "Security")
    Setting("both", "--tls-cert", "GRAPHEXEC_TLS_CERT", "", "none: plaintext", "serve TLS with this PEM certificate",
            metavar="PEM"),
    Setting("both", "--tls-key", "GRAPHEXEC_TLS_KEY", "", "none", "the certificate's PEM key", metavar="PEM"),
    Setting("both", "--tls-client-ca", "GRAPHEXEC_TLS_CLIENT_CA", "", "none: no client certificates",
            "require client certificates signed by this CA (mutual TLS)", metavar="PEM"),
    Setting("serve", "--tls-ca", "GRAPHEXEC_TLS_CA", "", "the system's roots",
            "CA of the workers' certificates, for workers that serve TLS", metavar="PEM"),
    Setting("both", "--auth-tokens", "GRAPHEXEC_AUTH_TOKENS_FILE", "", "none: one tenant, no tokens",
            "file of `TENANT TOKEN` lines: callers must send a token; tenants are isolated (worker: for the "
            "runs it takes on --run-port; give it the servers' file)", metavar="FILE"),
    Setting("both", "--worker-secret-file", "GRAPHEXEC_WORKER_SECRET_FILE", "", "none: workers serve any caller",
            "secret shared by servers and workers: authenticates RunPlan, signs registrations", metavar="FILE"),
    Setting("both", "--redis-password-file", "GRAPHEXEC_REDIS_PASSWORD_FILE", "", "the --redis URL's password, if any",
            "Redis password", metavar="FILE"),
    Setting("both", "--insecure", "GRAPHEXEC_INSECURE", "", "off: a non-loopback --host needs TLS and tokens",
            "listen on a non-loopback address without TLS and authentication anyway", _switch, switch=True),
    Setting("serve", "--no-reflection", "GRAPHEXEC_NO_REFLECTION", "", "reflection on",
            "do not serve gRPC reflection", _switch, switch=True),
    # Limits (README "Security: Limits", graphexec/server/limits.py); sizes take K/M/G/Ki/Mi/Gi suffixes
    Setting("both", "--memory-limit", "GRAPHEXEC_MEMORY_LIMIT", "0", "0: 80% of physical memory (CPU; none on GPU)",
            "address-space limit (RLIMIT_AS) of the process running kernels (worker, or serve without --redis), so "
            "a run that allocates too much fails RESOURCE_EXHAUSTED instead of killing it", parse_size,
            metavar="BYTES"),
    Setting("both", "--max-message-bytes", "GRAPHEXEC_MAX_MESSAGE_BYTES", str(_LIMITS.max_message_bytes),
            f"{_LIMITS.max_message_bytes} (256 MiB)", "largest message received", parse_size, metavar="BYTES"),
    Setting("both", "--max-graph-nodes", "GRAPHEXEC_MAX_GRAPH_NODES", str(_LIMITS.max_graph_nodes),
            str(_LIMITS.max_graph_nodes), "nodes of an uploaded graph", int, metavar="N"),
    Setting("both", "--max-graph-bytes", "GRAPHEXEC_MAX_GRAPH_BYTES", str(_LIMITS.max_graph_bytes),
            f"{_LIMITS.max_graph_bytes} (256 MiB)", "bytes of a graph upload (attributes and constants included)",
            parse_size, metavar="BYTES"),
    Setting("both", "--max-string-bytes", "GRAPHEXEC_MAX_STRING_BYTES", str(_LIMITS.max_string_bytes),
            str(_LIMITS.max_string_bytes), "container names and other strings of a request", parse_size,
            metavar="BYTES"),
    Setting("both", "--run-memory-bytes", "GRAPHEXEC_RUN_MEMORY_BYTES", str(_LIMITS.run_memory_bytes),
            f"{_LIMITS.run_memory_bytes} (8 GiB)", "the statically known tensors of a run", parse_size,
            metavar="BYTES"),
    Setting("serve", "--max-streams", "GRAPHEXEC_MAX_STREAMS", str(_LIMITS.max_streams), str(_LIMITS.max_streams),
            "open Run streams", int, metavar="N"),
    Setting("serve", "--max-streams-per-connection", "GRAPHEXEC_MAX_STREAMS_PER_CONNECTION",
            str(_LIMITS.max_streams_per_connection), str(_LIMITS.max_streams_per_connection),
            "concurrent calls of one connection", int, metavar="N"),
    Setting("both", "--stream-idle-timeout", "GRAPHEXEC_STREAM_IDLE_TIMEOUT", f"{_LIMITS.stream_idle_timeout_s:g}",
            f"{_LIMITS.stream_idle_timeout_s:g} (seconds)",
            "seconds before an idle Run stream is closed", float, metavar="SECONDS"),
    Setting("serve", "--queue-depth", "GRAPHEXEC_QUEUE_DEPTH", str(_LIMITS.queue_depth), str(_LIMITS.queue_depth),
            "runs waiting beyond --threads; more are refused RESOURCE_EXHAUSTED", int, metavar="N"),
    Setting("serve", "--max-sessions-per-tenant", "GRAPHEXEC_MAX_SESSIONS_PER_TENANT",
            str(_LIMITS.max_sessions_per_tenant), str(_LIMITS.max_sessions_per_tenant),
            "open sessions of one tenant", int, metavar="N"),
    Setting("both", "--max-variable-bytes-per-tenant", "GRAPHEXEC_MAX_VARIABLE_BYTES_PER_TENANT",
            str(_LIMITS.max_variable_bytes_per_tenant), f"{_LIMITS.max_variable_bytes_per_tenant} (16 GiB)",
            "bytes of stored variables of one tenant, checked where runs commit them (worker, or serve without "
            "--redis): give workers the servers' value", parse_size, metavar="BYTES"),
    Setting("both", "--max-graph-bytes-per-tenant", "GRAPHEXEC_MAX_GRAPH_BYTES_PER_TENANT",
            str(_LIMITS.max_graph_bytes_per_tenant), f"{_LIMITS.max_graph_bytes_per_tenant} (4 GiB)",
            "bytes of the graphs one tenant uploaded that the store holds", parse_size, metavar="BYTES"),
    Setting("serve", "--compile-processes", "GRAPHEXEC_COMPILE_PROCESSES", str(_LIMITS.compile_processes),
            f"{_LIMITS.compile_processes} (0: compile every graph in the server's own threads)",
            "child processes that decode and compile large graphs, so their compiles never stall other runs",
            int, metavar="N"),
    Setting("serve", "--compile-process-nodes", "GRAPHEXEC_COMPILE_PROCESS_NODES",
            str(_LIMITS.compile_process_nodes), str(_LIMITS.compile_process_nodes),
            "graphs of at least this many nodes are decoded and compiled in the compile processes", int, metavar="N"),
    Setting("serve", "--compile-timeout-s", "GRAPHEXEC_COMPILE_TIMEOUT_S", f"{_LIMITS.compile_timeout_s:g}",
            f"{_LIMITS.compile_timeout_s:g} (seconds)",
            "deadline of a decode or compile in a compile process (DEADLINE_EXCEEDED past it)", float,
            metavar="SECONDS"),
    Setting("both", "--cache-bytes", "GRAPHEXEC_CACHE_BYTES", str(_LIMITS.cache_bytes),
            f"{_LIMITS.cache_bytes} (256 MiB) each for graphs, plans and (without --redis) uploads",
            "bytes of each in-memory cache", parse_size, metavar="BYTES"),
)


class UsageError(Exception):
    """A setting that cannot work as given (exit status 2, like argparse's own errors)."""


def version() -> str:
    """The installed distribution's version; the source's own when run from a checkout not installed."""
    try:
        return importlib.metadata.version("graphexec")
    except importlib.metadata.PackageNotFoundError:
        return graphexec.__version__


def _help(setting: Setting) -> str:
    now = f", now {os.environ[setting.variable]!r}" if setting.variable in os.environ else ""
    text = f"{setting.help} (default: {setting.shown_default}; env {setting.variable}{now})"
    return text.replace("%", "%%")  # argparse %-formats help strings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphexec", description="Remote execution of TF1-style graphs.")
    parser.add_argument("--version", action="version", version=f"graphexec {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{serve,worker}")
    parsers = {
        "serve": commands.add_parser("serve", help="serve the GraphExec API",
                                     description="Serve the GraphExec API (without --redis: all in this process)."),
        "worker": commands.add_parser("worker", help="run plans for the servers sharing a Redis",
                                      description="Run plans for the servers that share a Redis."),
    }
    for setting in SETTINGS:
        for command in setting.commands():
            if setting.switch:
                parsers[command].add_argument(setting.flag, action="store_true", help=_help(setting),
                                              default=setting.type(os.environ.get(setting.variable, setting.default)))
                continue
            # A string default is parsed like a command-line value, so a bad variable is reported like a bad flag.
            parsers[command].add_argument(setting.flag, default=os.environ.get(setting.variable, setting.default),
                                          type=setting.type, choices=setting.choices or None, metavar=setting.metavar,
                                          help=_help(setting),
                                          required=(command, setting.flag) == ("worker", "--redis")
                                          and setting.variable not in os.environ)
    return parser


def _redis_store(url: str, command: str, password: str | None, metrics: Metrics) -> RedisStore:
    """A RedisStore that answered a first request, or a one-line reason it cannot be."""
    try:
        store = RedisStore(url, password, metrics=metrics)
    except ValueError as exc:
        raise UsageError(f"--redis {url!r} is not a Redis URL ({exc}); use {REDIS_URL_FORMS}") from None
    try:
        workers = store.live_workers()
    except errors.UnavailableError as exc:
        store.close()
        raise errors.UnavailableError(None, None, f"{str(exc).rstrip('.')}; start Redis there or point --redis "
                                                  "(GRAPHEXEC_REDIS_URL) at a running one") from None
    if command == "serve" and not workers:
        print(f"graphexec serve: warning: no live worker is registered in Redis at {store.url}; runs fail with "
              f"UNAVAILABLE until one starts (graphexec worker --redis {store.url})", file=sys.stderr, flush=True)
    return store


_LIMIT_ARG_NAMES = {"stream_idle_timeout_s": "stream_idle_timeout"}  # Limits fields whose flag is named otherwise


def _limits(args) -> Limits:
    """The limits the command line sets; a worker has only those of the runs it takes itself (--run-port),
    and the defaults for the rest."""
    names = {field.name: _LIMIT_ARG_NAMES.get(field.name, field.name) for field in fields(Limits)}
    return Limits(**{field: getattr(args, name) for field, name in names.items() if hasattr(args, name)})


def _run_fingerprint(args, security: Security, limits: Limits) -> str:
    """The settings a worker that takes runs must share with the servers (graphexec.server.worker_runs)."""
    return worker_runs.fingerprint(security.tokens, limits, bool(args.tls_cert), args.tls_client_ca)


def _limit_memory(limit: int, device: str) -> None:
    """Cap this process's address space, so numpy's allocations beyond it raise MemoryError (answered
    RESOURCE_EXHAUSTED) rather than the kernel's OOM killer ending the process. Not on GPU: CUDA maps
    far more address space than it uses."""
    if device != "cpu":
        return
    if not limit:
        limit = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.8)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


@dataclass
class Security:
    credentials: object = None  # grpc.ServerCredentials, or None for plaintext
    tokens: TokenTable | None = None
    worker_secret: WorkerSecret | None = None
    redis_password: str | None = None
    worker_channel: object = None  # how servers dial workers that serve TLS
    direct_tls: object = None  # ssl.SSLContext: a worker's direct link's TLS, or how servers dial it
    api_direct_tls: object = None  # ssl.SSLContext: the TLS of serve's direct link for clients


def _security(args, is_server: bool) -> Security:
    """The security settings of the command line, refusing (UsageError, one line) a non-loopback listener
    that anyone who reaches it could use."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        raise UsageError("--tls-client-ca needs --tls-cert and --tls-key")
    security = Security()
    if args.tls_cert:
        security.credentials = tls.server_credentials(args.tls_cert, args.tls_key, args.tls_client_ca)
        link_tls = direct.server_context(args.tls_cert, args.tls_key, args.tls_client_ca)
        if is_server:
            security.api_direct_tls = link_tls
        else:
            security.direct_tls = link_tls
    if args.auth_tokens:
        security.tokens = TokenTable.load(args.auth_tokens)
    if args.worker_secret_file:
        security.worker_secret = WorkerSecret(read_secret(args.worker_secret_file, "worker secret"))
    if args.redis_password_file:
        security.redis_password = read_secret(args.redis_password_file, "Redis password")
    if is_server and args.redis:
        security.worker_channel = tls.channel_credentials(args.tls_ca, args.tls_cert, args.tls_key)
        security.direct_tls = direct.client_context(args.tls_ca, args.tls_cert, args.tls_key)
    missing = [what for what, given in (("TLS (--tls-cert/--tls-key)", args.tls_cert),
                                        ("tokens (--auth-tokens)",
                                         args.auth_tokens or (not is_server and args.run_port == -1)),
                                        ("a worker secret (--worker-secret-file)",
                                         args.worker_secret_file or (is_server and not args.redis))) if not given]
    if missing and not args.insecure and not _is_loopback(args.host):
        raise UsageError(f"refusing to listen on {args.host} without {' and '.join(missing)}: anyone who reaches it "
                         f"could run graphs and read or overwrite variables; give them, or --insecure to accept that")
    return security


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _metrics(args, host: str) -> Metrics:
    """This process's metrics, served over HTTP (on the gRPC host) when --metrics-port is set."""
    metrics = Metrics()
    if args.metrics_port is not None:
        port = serve_metrics(metrics, host, args.metrics_port)
        print(f"graphexec metrics on http://{host}:{port}/metrics", flush=True)
    return metrics


def serve(args) -> None:
    security = _security(args, is_server=True)
    _tune(args)
    _check_free(args.host, args.port, "--port (GRAPHEXEC_PORT)")
    if args.direct_port > 0:
        _check_free(args.host, args.direct_port, "--direct-port (GRAPHEXEC_DIRECT_PORT)")
    limits = _limits(args)
    if args.direct_port < -1:
        raise UsageError("--direct-port is a port, 0 for any free one, or -1 for none")
    if args.max_batch_size < 0 or args.max_batch_delay_us < 0:
        raise UsageError("--max-batch-size and --max-batch-delay-us cannot be negative")
    metrics = _metrics(args, args.host)
    if args.redis:
        store = _redis_store(args.redis, "serve", security.redis_password, metrics)
        local = None
    else:
        store = MemoryStore(limits.cache_bytes)
        _limit_memory(args.memory_limit, args.device)  # the embedded worker's kernels run in this process
        local = LocalWorker(WorkerCore(store, args.device.upper()), metrics)
    store.variable_quota = limits.max_variable_bytes_per_tenant
    pool = WorkerPool(store, local, security.worker_secret, security.worker_channel, security.direct_tls)
    readiness = Readiness(store, pool).start()
    service = Service(store, pool, metrics, limits, args.max_batch_size, args.max_batch_delay_us)
    server, port, link = create_server(service, f"{args.host}:{args.port}", limits,
                                       security.tokens, security.credentials, reflect=not args.no_reflection,
                                       health=readiness.servicer,
                                       direct_port=None if args.direct_port == -1 else args.direct_port,
                                       direct_tls=security.api_direct_tls,
                                       run_fingerprint=_run_fingerprint(args, security, limits)
                                       if args.redis and args.max_batch_size <= 1 else "")  # (batches form here)
    server.start()
    if link is not None:
        link.start()
    scheme = "grpcs" if security.credentials else "grpc"
    _ready_to_serve(args)
    print(f"graphexec serving on {scheme}://{args.host}:{port}", flush=True)
    _wait_for_signal()
    readiness.stop()
    if link is not None:
        link.stop()
    server.stop(grace=1.0).wait()
    service.compiler.close()
    pool.close()


def worker(args) -> None:
    security = _security(args, is_server=False)
    _tune(args)
    _check_free(args.host, args.port, "--port (GRAPHEXEC_WORKER_PORT)")
    if args.direct_port < -1 or args.run_port < -1:
        raise UsageError("--direct-port and --run-port are ports, 0 for any free one, or -1 for none")
    in_flight = None
    if args.run_port != -1:  # watched by a parent process that outlives it (before any thread starts)
        in_flight = supervisor.InFlight.shared()
        supervisor.supervise(in_flight, lambda: RedisStore(args.redis, security.redis_password))
    _limit_memory(args.memory_limit, args.device)
    metrics = _metrics(args, args.host)
    store = _redis_store(args.redis, "worker", security.redis_password, metrics)
    store.variable_quota = args.max_variable_bytes_per_tenant
    core = WorkerCore(store, args.device.upper())
    server, port, link = create_worker_server(core, args.host, args.port, args.threads, security.worker_secret,
                                              security.credentials, metrics,
                                              None if args.direct_port == -1 else args.direct_port,
                                              security.direct_tls)
    core.address = args.advertise or f"{_reachable_host(args.host)}:{port}"
    core.tls = security.credentials is not None
    run_link = run_service = None
    if args.run_port != -1:
        limits = _limits(args)
        in_flight.set_worker_id(core.worker_id)
        run_link, run_service = worker_runs.serve_runs(core, metrics, limits, security.tokens, args.host,
                                                       args.run_port, security.direct_tls, in_flight)
        core.run_port = run_link.port
        core.run_socket = run_link.local_name
        core.run_fingerprint = _run_fingerprint(args, security, limits)
    server.start()
    for started in (link, run_link):
        if started is not None:
            started.start()
    heartbeat = Heartbeat(store, core, security.worker_secret).start()
    devices = ", ".join(d["name"] for d in core.devices())
    _ready_to_serve(args)
    if run_link is not None:
        print(f"graphexec worker {core.worker_id} takes clients' runs on {core.address.rsplit(':', 1)[0]}:"
              f"{core.run_port}", flush=True)
    print(f"graphexec worker {core.worker_id} ({devices}) serving on {core.address}", flush=True)
    _wait_for_signal()
    heartbeat.stop()
    for started in (link, run_link):
        if started is not None:
            started.stop()
    server.stop(grace=1.0).wait()
    if run_service is not None:
        run_service.compiler.close()  # its compile processes, as serve closes its own


def _check_free(host: str, port: int, flag: str) -> None:
    """OSError with the fix when HOST:PORT cannot be bound (before gRPC tries, which logs its own lines)."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror} (--host must name this machine)") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
            try:
                probe.bind(address)
            except OSError as exc:
                hint = f"choose another {flag}, or 0 for any free port" if port else "--host must name this machine"
                raise OSError(f"cannot listen on {host}:{port}: {exc.strerror} ({hint})") from None


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


def _tune(args) -> None:
    if args.blas_threads < 0:
        raise UsageError("--blas-threads cannot be negative")
    if args.intra_op_threads < 0:
        raise UsageError("--intra-op-threads cannot be negative")
    if args.intra_op_spin_us < 0:
        raise UsageError("--intra-op-spin-us cannot be negative")
    blas.limit_threads(args.blas_threads)
    intra_op.set_spin(args.intra_op_spin_us)
    intra_op.set_threads(args.intra_op_threads)
    blas.warm_buffers(2 * intra_op.threads())  # request threads' products and their parts, at once
    try:  # asked for by name: loaded now, so that a missing torch stops the start (auto: when first needed)
        kernels = conv_library.choose(args.conv_library, now=args.conv_library == "torch")
    except ImportError as error:
        raise UsageError(f"--conv-library torch: {error}") from None
    try:
        loops = compiled.choose(args.compiled_kernels, now=args.compiled_kernels == "numba")
    except ImportError as error:
        raise UsageError(f"--compiled-kernels numba: {error}") from None
    log.info("convolutions: %s; compiled loops: %s; intra-op threads: %d", kernels, loops, intra_op.threads())
    keep_freed_memory(one_arena=True)


def _ready_to_serve(args) -> None:
    """The last steps before a server or worker says it serves: compile the intra-op spin (intra_op.prepare_spin
    says why; after the worker's fork by its supervisor, as the compiler thread must not be forked), then
    freeze what exists (tuning.freeze_startup_objects)."""
    spinning = intra_op.prepare_spin()
    log.info("intra-op threads %s", f"spin {args.intra_op_spin_us:g} us" if spinning else "block at once")
    freeze_startup_objects()  # last: what exists now lives as long as the process


def _reexec_with_process_settings() -> None:
    """Re-execute this command once with a short BLAS spin and one malloc arena (and glibc's copy setting,
    where it applies).

    Why: after each matrix product OpenBLAS's worker threads spin for a long while (about 0.1 s), and
    on a small machine that spinning takes the cores the gRPC threads and other requests need (the MLP
    benchmark on 2 cores: about 200 -> 300 steps/s). OpenBLAS reads the setting only when it loads,
    with numpy, before this module runs, and glibc reads its tunables when the process starts
    (graphexec.runtime.tuning.server_tunables); so a server started from the command line sets them and
    starts over. Settings already in the environment are left as they are.

    The new process imports this same copy of graphexec, and not the current folder: `python -m` would
    put the current folder first on sys.path, where a clone's folder (named graphexec, holding
    server/ and client/) would shadow the package.
    """
    changes = server_tunables()
    if BLAS_SPIN_VARIABLE not in os.environ:
        changes[BLAS_SPIN_VARIABLE] = BLAS_SPIN
    if not changes or not sys.executable:
        return
    os.environ.update(changes)
    sys.stdout.flush()
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(graphexec.__file__)))
    start = ("import sys\n"
             "if sys.path[0] == '': del sys.path[0]\n"
             f"sys.path.insert(0, {package_root!r})\n"
             "from graphexec.cli import main\n"
             "main()")
    os.execv(sys.executable, [sys.executable, "-c", start, *sys.argv[1:]])


def main(argv=None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    for setting in SETTINGS:  # argparse checks the choices of flags given, not of defaults from variables
        value = getattr(args, setting.flag[2:].replace("-", "_"), None)
        if setting.choices and args.command in setting.commands() and value not in setting.choices:
            parser.error(f"{setting.variable}={os.environ.get(setting.variable)!r}: "
                         f"choose from {', '.join(setting.choices)}")
    if argv is None:  # the command line (python -m graphexec, or the console script), not a caller's argv
        _reexec_with_process_settings()
    logs.configure(args.log_level, args.log_format)
    try:
        {"serve": serve, "worker": worker}[args.command](args)
    except UsageError as exc:
        parser.exit(2, f"graphexec {args.command}: error: {exc}\n")
    except (errors.OpError, OSError, ValueError) as exc:  # Redis unreachable, port taken, a bad tokens file...
        parser.exit(1, f"graphexec {args.command}: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
