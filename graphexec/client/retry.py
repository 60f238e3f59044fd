"""Retry with exponential backoff for idempotent calls.

Every unary GraphExec call is idempotent: uploads are content-addressed, callables are keyed by
content, and runs carry a request id that the server never applies twice. So a call that fails
with UNAVAILABLE (server restarting, worker lost, Redis briefly away) is retried, with jittered
exponential backoff, until `max_attempts` or the call's deadline runs out.

A run whose server says its store (Redis) is unavailable may still be applied once the store is
back (its commit may be on its way): giving up then would report as failed a run that took effect.
So such failures are retried past max_attempts, for up to `unknown_outcome_s` (longer than a store
restart or failover takes, far shorter than the server's request-id de-dup window of an hour), and
the answer that ends the retries is the truth: the stored result of the applied run, or the run
applied now, once.

"No live worker" is retried past max_attempts too, for up to `no_worker_s`: the run was never
dispatched, and workers reappear within seconds when they restart or when Redis comes back from a
pause (their registrations expire meanwhile). A server that has no worker at all still fails fast enough.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

import grpc

from graphexec.rpc import status


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    multiplier: float = 2.0
    retryable: frozenset = status.RETRYABLE
    unknown_outcome_s: float = 60.0
    no_worker_s: float = 10.0

    def backoffs(self):
        """Waits before attempt 2, 3, ... (full jitter)."""
        wait = self.initial_backoff_s
        for _ in range(self.max_attempts - 1):
            yield random.uniform(0, wait)
            wait = min(wait * self.multiplier, self.max_backoff_s)

    def call(self, attempt, deadline: float | None = None, outcome_unknown=None, failed: grpc.RpcError | None = None):
        """`attempt()` until it succeeds, fails with a non-retryable status, or attempts/time run out;
        while `outcome_unknown(error)` says a failure may yet take effect, until unknown_outcome_s.
        `failed`: the first attempt, made already (a fast path that tries once before coming here), failed so."""
        waits = self.backoffs()
        started = time.monotonic()
        failure = failed
        while True:
            if failure is None:
                try:
                    return attempt()
                except grpc.RpcError as exc:
                    failure = exc
            if failure.code() not in self.retryable:
                raise failure
            wait = next(waits, None)
            window = self._extended_window(failure, outcome_unknown)
            if wait is None and self.max_attempts > 1 and window:
                wait = random.uniform(0, self.max_backoff_s)
                if time.monotonic() + wait >= started + window:
                    raise failure
            if wait is None or (deadline is not None and time.monotonic() + wait >= deadline):
                raise failure
            time.sleep(wait)
            failure = None

    def _extended_window(self, exc: grpc.RpcError, outcome_unknown) -> float:
        """Seconds to keep retrying `exc` after max_attempts: 0, or a window that its cause may outlast."""
        if outcome_unknown is not None and outcome_unknown(exc):
            return self.unknown_outcome_s
        return self.no_worker_s if no_live_worker(exc) else 0.0


NO_RETRY = RetryPolicy(max_attempts=1)


def store_unavailable(exc: grpc.RpcError) -> bool:
    """Whether a failed run says the server's store was unreachable (graphexec.server.redis_store): its
    update may still be committed, so its outcome is unknown until the store answers again."""
    return exc.code() == grpc.StatusCode.UNAVAILABLE and (exc.details() or "").startswith("Redis at ")


def no_live_worker(exc: grpc.RpcError) -> bool:
    """Whether a call failed before dispatch because its server saw no live worker (graphexec.runtime.placement)."""
    return exc.code() == grpc.StatusCode.UNAVAILABLE and (exc.details() or "").startswith("no live worker: ")
