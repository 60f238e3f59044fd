"""The plan cache: compiled plans by key, in this process and in the store (shared by replicas).

A plan key is the sha256 of (graph digest, feeds, fetches, targets, live device types, compiler
version). It doubles as the callable handle clients run, so a replica that never saw the callable
finds the plan in the store and runs it without compiling (reported as PLAN_SOURCE_STORE).
"""
from __future__ import annotations

import hashlib
import json
import time

from graphexec import errors
from graphexec.compiler.plan import compiler_version
from graphexec.rpc import convert
from graphexec.runtime.bounded import BoundedCache
from graphexec.runtime.metadata import COMPILED, MEMORY, STORE
from graphexec.runtime.store import Store
from graphexec.runtime.worker import CachedPlan
from graphexec.server.telemetry import Metrics

MAX_CACHED_PLANS = 4096
MAX_CACHED_PLAN_BYTES = 256 << 20  # constants included; a dropped plan is reloaded from the store


def plan_key(graph_digest: str, feeds, fetches, targets, device_types) -> str:
    signature = [graph_digest, list(feeds), list(fetches), list(targets), sorted(device_types), compiler_version()]
    return hashlib.sha256(json.dumps(signature, separators=(",", ":")).encode()).hexdigest()


class PlanCache:
    def __init__(self, store: Store, metrics: Metrics | None = None, max_bytes: int = MAX_CACHED_PLAN_BYTES):
        self.store = store
        self.metrics = metrics or Metrics()
        self._plans = BoundedCache(MAX_CACHED_PLANS, max_bytes)

    def lookup(self, key: str) -> tuple[CachedPlan, str] | None:
        cached = self._plans.get(key)
        if cached is not None:
            self.metrics.plan_lookup(MEMORY)
            return cached, MEMORY
        blob = self.store.get_blob("plan", key)
        if blob is None:
            return None
        try:
            plan = convert.plan_from_bytes(blob)
        except convert.OtherCompiler:  # a handle made by another version: the client makes it again here
            return None
        cached = CachedPlan.of(key, plan)
        self._remember(cached)
        self.metrics.plan_lookup(STORE)
        return cached, STORE

    def get(self, key: str) -> tuple[CachedPlan, str]:
        """(plan, source) of a callable handle; NOT_FOUND (starting "callable ") tells clients to make it again."""
        found = self.lookup(key)
        if found is None:
            raise errors.NotFoundError(None, None, f"callable {key[:16]!r} is not known to this server; make it "
                                                   f"again")
        return found

    def get_or_compile(self, key: str, compile_plan) -> tuple[CachedPlan, str]:
        found = self.lookup(key)
        if found is not None:
            return found
        started = time.perf_counter()
        compiled = compile_plan()  # a Plan, or one serialized by a compile process
        blob = compiled if isinstance(compiled, bytes) else convert.plan_to_bytes(compiled)
        cached = CachedPlan.of(key, convert.plan_from_bytes(blob) if isinstance(compiled, bytes) else compiled)
        self.metrics.compile_seconds.observe(time.perf_counter() - started)
        self.metrics.plan_lookup(COMPILED)
        self.store.put_blob("plan", key, blob)
        self._remember(cached)
        return cached, COMPILED

    def _remember(self, cached: CachedPlan) -> None:
        self._plans.put(cached.key, cached, cached.plan.nbytes())
