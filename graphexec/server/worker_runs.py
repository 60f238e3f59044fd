"""Clients' runs taken by a `graphexec worker` itself (`--run-port`), one hop shorter than through a server.

Why: in the Redis deployment a run went client -> server -> worker -> server -> client. Each hop is a
process that decodes, looks up and re-encodes the run, and on a 2-core machine two more wake-ups: W1
took 550 us that way against 195 us on embedded `serve` (bench/README.md, W9). A worker started with
`--run-port` serves the API's direct link (graphexec.server.direct_api) itself: the same servicer and
Service as a server's, over the same store, whose only worker is the worker's own core. So a run there
keeps every promise of a server's: tenants from the same tokens, the same limits, request ids, commits
that check the container's version in Redis, any server (or worker) able to answer a retry. Its
MakeCallable (a session's first call of a signature) and RunStep answer from plans servers compiled; it
compiles none itself (a large compile would stall its runs; servers compile in processes of their own),
so a new signature is answered UNAVAILABLE and the client sends that call to a server over gRPC.

Servers name such a worker to clients in CreateSession (`direct_address`), one per session (its
variables stay hot there), and only a worker whose settings `fingerprint` equals their own: the same
tokens, the limits a run meets, and TLS with the same client CA. A worker with other settings is
logged once and its runs keep going through the server. Clients send runs to the worker and fall
back to the server over gRPC when it cannot be reached; a run's request id makes that resend safe.

A run that kills its worker is refused for the cool-down as when a server placed it
(graphexec.server.poison): the worker's parent process (graphexec.server.supervisor) puts its plan on
the shared poison list, and the client's resend through a server says which worker's link broke under
it, so that server answers ABORTED instead of handing it to the next worker (Service, `broke_at`).
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import ssl

from graphexec.runtime.worker import PlanCall, PlanResult, WorkerCore
from graphexec.server import telemetry
from graphexec.server.auth import TokenTable
from graphexec.server.direct_api import DirectApiServer
from graphexec.server.limits import Limits
from graphexec.server.pool import LocalWorker, WorkerPool
from graphexec.server.service import Service
from graphexec.server.servicer import GraphExecServicer, authenticator
from graphexec.server.supervisor import InFlight

# The limits a run meets on the direct link (the others size this process's own resources).
RUN_LIMITS = ("max_message_bytes", "max_graph_nodes", "max_graph_bytes", "max_string_bytes", "run_memory_bytes",
              "stream_idle_timeout_s", "max_variable_bytes_per_tenant", "max_graph_bytes_per_tenant")


def fingerprint(tokens: TokenTable | None, limits: Limits, tls: bool, client_ca: str = "") -> str:
    """What servers and workers compare before a worker takes a server's clients' runs: equal when they
    admit the same callers as the same tenants under the same limits, over TLS alike."""
    ca = hashlib.sha256(pathlib.Path(client_ca).read_bytes()).hexdigest() if client_ca else ""
    settings = {"tokens": tokens.fingerprint() if tokens is not None else "", "tls": tls, "client_ca": ca,
                "limits": {name: getattr(limits, name) for name in RUN_LIMITS}}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


class WatchedWorker(LocalWorker):
    """The worker's own core, each run's plan key in a slot of `in_flight` while it runs, for the parent
    process to refuse the plan if the run kills this one (graphexec.server.supervisor)."""

    def __init__(self, core: WorkerCore, metrics: telemetry.Metrics, in_flight: InFlight | None):
        super().__init__(core, metrics)
        self.in_flight = in_flight

    def run(self, call: PlanCall, plan) -> PlanResult:
        if self.in_flight is None:
            return super().run(call, plan)
        slot = self.in_flight.enter(call.plan_key)
        try:
            return super().run(call, plan)
        finally:
            self.in_flight.leave(slot)


def serve_runs(core: WorkerCore, metrics: telemetry.Metrics, limits: Limits, tokens: TokenTable | None,
               host: str, port: int, ssl_context: ssl.SSLContext | None,
               in_flight: InFlight | None = None) -> tuple[DirectApiServer, Service]:
    """The direct link on `host`:`port` (0: any free one) that runs clients' RunCallable and RunStep on
    `core` (and makes their callables), with a Service of its own over the core's store; started by the
    caller (`.start()`). With `in_flight`, its runs are watched by the parent process
    (graphexec.server.supervisor). Without TLS the link also listens on a Unix socket (`link.local_name`)
    for clients on the worker's host."""
    service = Service(core.store, WorkerPool(core.store, WatchedWorker(core, metrics, in_flight)), metrics, limits,
                      compiles=False)
    servicer = GraphExecServicer(service, limits)
    link = DirectApiServer(servicer, host, port, authenticator(tokens), ssl_context, telemetry.Interceptor(metrics),
                           local=True)
    return link, service
