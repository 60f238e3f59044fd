"""Retry with exponential backoff for idempotent calls.

Every unary GraphExec call is idempotent: uploads are content-addressed, callables are keyed by
content, and runs carry a request id that the server never applies twice. So a call that fails
with UNAVAILABLE (server restarting, worker lost, Redis briefly away) is retried, with jittered
exponential backoff, until `max_attempts` or the call's deadline runs out.
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

    def backoffs(self):
        """Waits before attempt 2, 3, ... (full jitter)."""
        wait = self.initial_backoff_s
        for _ in range(self.max_attempts - 1):
            yield random.uniform(0, wait)
            wait = min(wait * self.multiplier, self.max_backoff_s)

    def call(self, attempt, deadline: float | None = None):
        """`attempt()` until it succeeds, fails with a non-retryable status, or attempts/time run out."""
        waits = self.backoffs()
        while True:
            try:
                return attempt()
            except grpc.RpcError as exc:
                if exc.code() not in self.retryable:
                    raise
                wait = next(waits, None)
                if wait is None or (deadline is not None and time.monotonic() + wait >= deadline):
                    raise
                time.sleep(wait)


NO_RETRY = RetryPolicy(max_attempts=1)
