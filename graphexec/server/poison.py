"""Runs that killed their worker, refused for a cool-down instead of killing the next worker too.

A run whose worker died while running it (the call broke after it was sent, as when the kernel
process is OOM-killed) is not resent to another worker: it fails ABORTED saying so, and its
signature (plan key and feed contents) is refused for COOLDOWN_S with RESOURCE_EXHAUSTED, at once.
Feeds are hashed only for plans that have a signature on the list, so other runs pay nothing.
A plan can also be refused whatever its feeds (`plan_wide`, an empty signature): what the parent of a
worker that takes clients' runs itself publishes when it died under them (graphexec.server.supervisor).
The list is bounded (oldest dropped first). With a shared store (Redis), a signature goes to the
store too, and every replica merges the store's list into its own every SYNC_S, so the run is
refused by all replicas, not only by the one whose worker it killed (which would just send it to
another worker through another replica).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time

import numpy as np

from graphexec import errors

COOLDOWN_S = 60.0
MAX_SIGNATURES = 1024
SYNC_S = 0.5
log = logging.getLogger("graphexec.poison")


def signature(plan_key: str, feeds) -> bytes:
    digest = hashlib.blake2b(plan_key.encode(), digest_size=16)
    for value in feeds:
        array = np.asarray(value)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(str(array.tolist()).encode() if array.dtype == object else np.ascontiguousarray(array).data)
    return digest.digest()


PLAN_WIDE = b""  # the signature of an entry that refuses every run of its plan


def plan_wide(store, plan_key: str) -> None:
    """Refuse every run of `plan_key` on every replica and worker of `store` for the cool-down."""
    store.add_poison(f"{plan_key}:{PLAN_WIDE.hex()}", COOLDOWN_S, MAX_SIGNATURES)


class PoisonList:
    """`store`: a shared store (one with `shared` set) to publish signatures to and merge from, else None."""

    def __init__(self, cooldown_s: float = COOLDOWN_S, store=None):
        self.cooldown_s = cooldown_s
        self.store = store
        self._until: dict[tuple[str, bytes], float] = {}  # insertion-ordered: oldest first
        self._plans: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if store is not None:
            threading.Thread(target=self._sync_loop, name="graphexec-poison-sync", daemon=True).start()

    def add(self, plan_key: str, feeds) -> None:
        sig = signature(plan_key, feeds)
        self._remember(plan_key, sig, time.monotonic() + self.cooldown_s)
        if self.store is not None:
            try:
                self.store.add_poison(f"{plan_key}:{sig.hex()}", self.cooldown_s, MAX_SIGNATURES)
            except errors.UnavailableError as exc:  # refused here still; other replicas learn it from nobody
                log.warning("could not share a poison signature with the other replicas: %s", exc)

    def check(self, plan_key: str, feeds) -> None:
        """RESOURCE_EXHAUSTED when this run killed a worker less than the cool-down ago."""
        if plan_key not in self._plans:
            return
        if self._refused((plan_key, PLAN_WIDE)):
            raise errors.ResourceExhaustedError(None, None, f"a run of this graph killed the worker it was sent to; "
                                                            f"its runs are refused for {self.cooldown_s:.0f} s rather "
                                                            f"than risking another worker")
        if self._refused((plan_key, signature(plan_key, feeds))):
            raise errors.ResourceExhaustedError(None, None, f"this run (the same graph and feeds) killed the worker "
                                                            f"running it; it is refused for {self.cooldown_s:.0f} s "
                                                            f"rather than risking another worker")

    def _refused(self, key) -> bool:
        with self._lock:
            until = self._until.get(key)
            if until is not None and until <= time.monotonic():
                self._forget(key)
                until = None
        return until is not None

    def sync(self) -> None:
        """Merge the shared store's signatures (their expiry is wall-clock time there)."""
        offset = time.monotonic() - time.time()
        for member, until in self.store.poison_list():
            plan_key, _, sig = member.rpartition(":")
            try:
                self._remember(plan_key, bytes.fromhex(sig), until + offset)
            except ValueError:
                continue  # not ours: anyone who can write to the store could have put it

    def close(self) -> None:
        self._stop.set()

    def _remember(self, plan_key: str, sig: bytes, until: float) -> None:
        key = (plan_key, sig)
        with self._lock:
            if key not in self._until:
                self._plans[plan_key] = self._plans.get(plan_key, 0) + 1
            elif self._until[key] >= until:
                return
            self._until[key] = until
            while len(self._until) > MAX_SIGNATURES:
                self._forget(next(iter(self._until)))

    def _forget(self, key) -> None:
        del self._until[key]
        count = self._plans.pop(key[0], 1) - 1
        if count:
            self._plans[key[0]] = count

    def _sync_loop(self) -> None:
        warned = False
        while not self._stop.wait(SYNC_S):
            try:
                self.sync()
                warned = False
            except errors.UnavailableError as exc:
                if not warned:
                    log.warning("cannot read the shared poison list, keeping this replica's: %s", exc)
                warned = True
