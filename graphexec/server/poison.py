"""Runs that killed their worker, refused for a cool-down instead of killing the next worker too.

A run whose worker died while running it (the call broke after it was sent, as when the kernel
process is OOM-killed) is not resent to another worker: it fails ABORTED saying so, and its
signature (plan key and feed contents) is refused for COOLDOWN_S with RESOURCE_EXHAUSTED, at once.
Feeds are hashed only for plans that have a signature on the list, so other runs pay nothing.
The list is per server replica and bounded (oldest dropped first).
"""
from __future__ import annotations

import hashlib
import threading
import time

import numpy as np

from graphexec import errors

COOLDOWN_S = 60.0
MAX_SIGNATURES = 1024


def signature(plan_key: str, feeds) -> bytes:
    digest = hashlib.blake2b(plan_key.encode(), digest_size=16)
    for value in feeds:
        array = np.asarray(value)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(str(array.tolist()).encode() if array.dtype == object else np.ascontiguousarray(array).data)
    return digest.digest()


class PoisonList:
    def __init__(self, cooldown_s: float = COOLDOWN_S):
        self.cooldown_s = cooldown_s
        self._until: dict[tuple[str, bytes], float] = {}  # insertion-ordered: oldest first
        self._plans: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, plan_key: str, feeds) -> None:
        key = (plan_key, signature(plan_key, feeds))
        with self._lock:
            if key not in self._until:
                self._plans[plan_key] = self._plans.get(plan_key, 0) + 1
            self._until[key] = time.monotonic() + self.cooldown_s
            while len(self._until) > MAX_SIGNATURES:
                self._forget(next(iter(self._until)))

    def check(self, plan_key: str, feeds) -> None:
        """RESOURCE_EXHAUSTED when this run killed a worker less than the cool-down ago."""
        if plan_key not in self._plans:
            return
        key = (plan_key, signature(plan_key, feeds))
        with self._lock:
            until = self._until.get(key)
            if until is not None and until <= time.monotonic():
                self._forget(key)
                until = None
        if until is not None:
            raise errors.ResourceExhaustedError(None, None, f"this run (the same graph and feeds) killed the worker "
                                                            f"running it; it is refused for {self.cooldown_s:.0f} s "
                                                            f"rather than risking another worker")

    def _forget(self, key) -> None:
        del self._until[key]
        count = self._plans.pop(key[0], 1) - 1
        if count:
            self._plans[key[0]] = count
