"""graphexec, through its TF1-style client (`import graphexec as tf`).

- GraphexecInProcess: `tf.Session()` in the benchmark process (no server), beside TF in-process.
- GraphexecEmbedded: one `python -m graphexec serve --port 0` process that runs graphs itself.
- GraphexecGrpc: the same with every call over gRPC (`--direct-port -1`: no direct link for runs).
- GraphexecRedis: a private `redis-server`, one `graphexec worker --run-port 0` and two
  `graphexec serve --redis` replicas; the workloads use replica A, W6 also replica B.

Servers print `graphexec serving on grpc://127.0.0.1:PORT`, workers
`graphexec worker ID serving on HOST:PORT`. Until graphexec (or one of its
features) exists the adapter raises Unavailable, so the harness reports "n/a: <reason>".
"""

import functools
import shutil
import sys

from bench import graphs, procs
from bench.systems import Unavailable
from bench.systems.tf1_style import Tf1StyleSystem

# W8 runs against two servers of its own: one plain, one with these flags (both with serve's default of
# one BLAS thread, which a batching server wants: docs/architecture.md, "Dynamic batching").
BATCHING_ARGS = ("--max-batch-size", "64", "--max-batch-delay-us", "2000")
# The worker takes clients' runs itself (graphexec/server/worker_runs.py): W9 measures the deployment
# at its fastest; docs/operations.md says what --run-port trades.
WORKER_ARGS = ("--run-port", "0")
SERVE_READY = r"serving on (grpc://\S+)"  # graphexec serving on grpc://127.0.0.1:PORT
WORKER_READY = r"graphexec worker .*serving on"  # graphexec worker ID serving on HOST:PORT
# Raised by a graphexec that lacks a feature the workload uses (a missing op, Session.stream, ...).
MISSING_FEATURE = (ImportError, AttributeError, NotImplementedError)


def import_graphexec():
    try:
        import graphexec
    except ImportError as error:
        raise Unavailable(f"graphexec not importable: {error}") from error
    return graphexec


def feature_or_unavailable(method):
    """Report a missing graphexec feature as Unavailable ("n/a") rather than as an error."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except MISSING_FEATURE as error:
            raise Unavailable(f"graphexec lacks a feature: {type(error).__name__}: {error}") from error

    return wrapper


def start_serve(name, extra_args=()):
    argv = [sys.executable, "-m", "graphexec", "serve", "--port", "0", *extra_args]
    try:
        return procs.ServerProcess(name, argv, ready=SERVE_READY, timeout_s=60)
    except procs.ServerStartError as error:
        raise Unavailable(str(error)) from error


class GraphexecInProcess(Tf1StyleSystem):
    name = "graphexec_inprocess"
    has_server = False

    def start(self):
        self.api = import_graphexec()

    build_w1 = feature_or_unavailable(Tf1StyleSystem.build_w1)
    build_w2 = feature_or_unavailable(Tf1StyleSystem.build_w2)
    build_w3 = feature_or_unavailable(Tf1StyleSystem.build_w3)
    build_w5 = feature_or_unavailable(Tf1StyleSystem.build_w5)
    build_w10 = feature_or_unavailable(Tf1StyleSystem.build_w10)


class GraphexecEmbedded(Tf1StyleSystem):
    name = "graphexec"

    def __init__(self):
        super().__init__()
        self._processes = []
        self._serve_args = ()  # what every server of this system is started with (GraphexecRedis: --redis URL)
        self._w8_targets = {}  # batching -> target

    def start(self):
        self.api = import_graphexec()
        server = start_serve(self.name, self._serve_args)
        self._processes.append(server)
        self.target = server.match.group(1)

    def close(self):
        super().close()
        while self._processes:
            self._processes.pop().stop()

    def client_config(self):
        return {"target": self.target}

    @classmethod
    def connect(cls, config):
        client = cls()
        client.api = import_graphexec()
        client.target = config["target"]
        return client

    build_w1 = feature_or_unavailable(Tf1StyleSystem.build_w1)
    build_w2 = feature_or_unavailable(Tf1StyleSystem.build_w2)
    build_w3 = feature_or_unavailable(Tf1StyleSystem.build_w3)
    build_w5 = feature_or_unavailable(Tf1StyleSystem.build_w5)
    build_w10 = feature_or_unavailable(Tf1StyleSystem.build_w10)
    build_w8 = feature_or_unavailable(Tf1StyleSystem.build_w8)

    def w8_config(self, batching):
        if batching not in self._w8_targets:
            args = [*self._serve_args, *(BATCHING_ARGS if batching else ())]
            server = start_serve(f"{self.name}-w8{'-batching' * batching}", args)
            self._processes.append(server)
            self._w8_targets[batching] = server.match.group(1)
        return {"target": self._w8_targets[batching]}

    @feature_or_unavailable
    def build_w7(self):
        graph, (a, b, c) = self.build_graph(graphs.add_graph)
        session = self.new_session(graph)
        if not hasattr(session, "stream"):
            raise Unavailable("graphexec Session has no stream(fetches, feed_iter) yet")

        def run(va, vb, n):
            return session.stream(c, ({a: va, b: vb} for _ in range(n)))

        return run


class GraphexecGrpc(GraphexecEmbedded):
    """GraphexecEmbedded with every call over gRPC: its servers have no direct link (--direct-port -1),
    as a client in another language, or one that cannot reach the link's port, uses them."""

    name = "graphexec_grpc"

    def __init__(self):
        super().__init__()
        self._serve_args = ("--direct-port", "-1")


class GraphexecRedis(GraphexecEmbedded):
    name = "graphexec_redis"

    def start(self):
        self.api = import_graphexec()
        redis_server = shutil.which("redis-server")
        if not redis_server:
            raise Unavailable("redis-server not on PATH")
        redis, redis_url = procs.start_redis(redis_server)
        self._processes.append(redis)
        self._serve_args = ("--redis", redis_url)
        try:
            self._processes.append(procs.ServerProcess(
                "graphexec-worker", [sys.executable, "-m", "graphexec", "worker", "--redis", redis_url, *WORKER_ARGS],
                ready=WORKER_READY, timeout_s=60))
        except procs.ServerStartError as error:
            raise Unavailable(str(error)) from error
        replicas = [start_serve(f"graphexec-replica-{i}", ["--redis", redis_url]) for i in "ab"]
        self._processes.extend(replicas)
        self.target, self.target_b = (replica.match.group(1) for replica in replicas)

    def w9_deployments(self):
        """{"redis": this system, "embedded": a client of a plain `serve` started beside it} for W9."""
        server = start_serve("graphexec-embedded-w9")
        self._processes.append(server)
        embedded = GraphexecEmbedded.connect({"target": server.match.group(1)})
        embedded._sessions = self._sessions  # closed with this system's
        return {"redis": self, "embedded": embedded}

    @feature_or_unavailable
    def build_w6(self, first_add):
        """Each replica gets its own copy of the graph, so no client-side cache helps replica B."""
        runs = []
        for target in (self.target, self.target_b):
            graph, (x, y) = self.build_graph(graphs.chain_graph, first_add)
            session = self.new_session(graph, target=target)
            runs.append(lambda vx, session=session, x=x, y=y: session.run(y, {x: vx}))
        return tuple(runs)
