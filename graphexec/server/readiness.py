"""Liveness and readiness on the gRPC health service (grpc.health.v1), under two service names.

* LIVENESS, the empty name "": SERVING while the process answers at all. Probes that restart a
  process (Kubernetes livenessProbe, the compose healthcheck) ask this one: restarting a server
  because Redis is away would not bring Redis back.
* READINESS, "graphexec.v1.GraphExecService": SERVING only while the store answers and at least one
  worker is live, else NOT_SERVING. Probes that route traffic (readinessProbe) ask this one.

A background thread re-checks readiness every CHECK_S.
"""
from __future__ import annotations

import logging
import threading

from grpc_health.v1 import health, health_pb2

from graphexec import errors
from graphexec.rpc import methods

LIVENESS = ""
READINESS = methods.GRAPH_EXEC_SERVICE.full_name
CHECK_S = 1.0
_SERVING, _NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
log = logging.getLogger("graphexec.readiness")


class Readiness:
    def __init__(self, store, pool):
        self.store, self.pool = store, pool
        self.servicer = health.HealthServicer()
        self.servicer.set(LIVENESS, _SERVING)
        self.reason = None
        self._update()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="graphexec-readiness", daemon=True)

    def start(self) -> Readiness:
        self._thread.start()
        return self

    def not_ready_reason(self) -> str | None:
        """Why this server is not ready, or None when it is."""
        try:
            self.store.ping()
        except errors.OpError as exc:
            return exc.message
        if not self.pool.workers():
            return "no worker is live"
        return None

    def _update(self) -> None:
        reason = self.not_ready_reason()
        if reason != self.reason:
            if reason:
                log.warning("not ready: %s", reason)
            self.reason = reason
        self.servicer.set(READINESS, _NOT_SERVING if reason else _SERVING)

    def _loop(self) -> None:
        while not self._stop.wait(CHECK_S):
            self._update()

    def stop(self) -> None:
        self._stop.set()
        self.servicer.enter_graceful_shutdown()
