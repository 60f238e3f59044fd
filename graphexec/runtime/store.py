"""The state a WorkerCore runs against, behind one interface: what a server shares with its replicas and
workers, or an in-process session's own variables.

`MemoryStore` keeps it in this process (an in-process tf.Session, `graphexec serve` without --redis);
`RedisStore` (graphexec.server.redis_store) keeps it in Redis so that replicas and workers share it:

* blobs: immutable, content-addressed bytes: graph segments ("segment", chain hex) and compiled
  plans ("plan", plan key);
* session records (small JSON documents);
* variables, per container (a tenant's: see store_container): name -> array, plus a version counter that every commit bumps;
* applied request ids, per container, with the result of the run that applied them, written in the
  same atomic step as the variable updates (so a retried run is answered, never applied twice);
* a per-container lock that serializes runs which update variables (on a shared store, only those
  whose commit aborted: the others rely on the commit's version check, see Store.shared);
* the worker registry: each live worker's id, address, devices and load, kept alive by heartbeats.

Every method may raise errors.UnavailableError when the backing store cannot be reached.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict

import numpy as np

from graphexec import errors
from graphexec.runtime.bounded import BoundedCache

APPLIED_TTL_S = 3600  # how long a request id is remembered: far longer than any client's retries
MAX_APPLIED_IN_MEMORY = 100_000
MAX_BLOBS, MAX_BLOB_BYTES = 100_000, 256 << 20
MAX_SESSIONS = 100_000
DEFAULT_LOCK_TIMEOUT_S = 30.0
REFUSED, NEWLY, ALREADY = 0, 1, 2  # how claim_graph_bytes counted a segment


def tenant_of(container: str) -> str:
    """The tenant whose container this is (the inverse of store_container's prefix)."""
    return container.partition("/")[0]


def over_quota(what: str, tenant: str, used: int, asked: int, quota: int, flag: str) -> errors.ResourceExhaustedError:
    who = f"tenant {tenant!r}" if tenant else "the tenant"
    return errors.ResourceExhaustedError(None, None, f"{who} is over its quota of {what}: {used} bytes stored, "
                                                     f"{asked} more asked, {quota} allowed ({flag})")


def store_container(tenant: str, container: str) -> str:
    """The store's name for `tenant`'s variable container `container`, so tenants never share one: tenant
    names hold no "/", so the first "/" ends the tenant's part (the single tenant's is empty)."""
    return f"{tenant}/{container}"


class AlreadyApplied(Exception):
    """A commit found its request id applied already: `result` is the stored result of that run."""

    def __init__(self, result: bytes):
        super().__init__("request already applied")
        self.result = result


class Store:
    """The interface; see the module docstring. `description` names the store in error messages.

    `shared`: other processes write the variables too (Redis). Then a worker holding a hot copy runs a
    step that updates variables without asking for the version first: the commit checks it (and the
    request id) in its one round trip, and the server runs the step again under the lock if it aborts."""

    description = "store"
    shared = False  # whether other processes (replicas, workers) see what is written here
    # Bytes of stored variables one tenant may hold (--max-variable-bytes-per-tenant; None: no limit),
    # checked by commits that grow them.
    variable_quota: int | None = None

    # blobs
    def get_blob(self, kind: str, key: str) -> bytes | None:
        raise NotImplementedError

    def get_blob_head(self, kind: str, key: str, nbytes: int) -> bytes | None:
        """The first `nbytes` bytes of a blob (all of a shorter one), or None when there is no such blob."""
        raise NotImplementedError

    def put_blob(self, kind: str, key: str, data: bytes) -> None:
        raise NotImplementedError

    # sessions
    def get_session(self, handle: str) -> bytes | None:
        raise NotImplementedError

    def put_session(self, handle: str, record: bytes) -> None:
        raise NotImplementedError

    def delete_session(self, handle: str) -> None:
        raise NotImplementedError

    def claim_session(self, tenant: str, handle: str, limit: int) -> bool:
        """Count `handle` among `tenant`'s open sessions, unless it has `limit` already (then False)."""
        raise NotImplementedError

    def release_session(self, tenant: str, handle: str) -> None:
        raise NotImplementedError

    # variables
    def begin_run(self, container: str, request_id: int) -> tuple[int, bytes | None]:
        """(variable version, stored result if request_id was already applied) in one round trip."""
        raise NotImplementedError

    def read_variables(self, container: str) -> tuple[int, dict[str, np.ndarray]]:
        raise NotImplementedError

    def staging(self, container: str):
        """Where a run may send its large new values of `container`'s variables before it commits (an
        object with `offer(name, value)` and `discard()`, passed to `commit`), or None (server.staging)."""
        return None

    def commit(self, container: str, base_version: int, updates: dict, request_id: int, result: bytes,
               added_bytes: int = 0, staging=None) -> int:
        """Atomically write `updates`, bump the version and record request_id -> result; returns the new
        version. Raises AlreadyApplied if request_id was applied already, else AbortedError if the
        version is no longer `base_version` or another run holds the container's lock (shared stores).
        `added_bytes`: how much the updates grow the container's variables (new ones, larger shapes),
        counted against the tenant's variable quota (RESOURCE_EXHAUSTED, nothing written, beyond it).
        `staging`: this store's `staging` object, with some of the updates already on their way."""
        raise NotImplementedError

    def reset(self, container: str) -> None:
        raise NotImplementedError

    def lock(self, container: str, timeout_s: float, owner: int = 0):
        """Context manager holding the container's update lock for the run with request id `owner`
        (whose commits it lets through); DeadlineExceededError on timeout."""
        raise NotImplementedError

    # uploaded graphs, counted per tenant (--max-graph-bytes-per-tenant)
    def claim_graph_bytes(self, tenant: str, chain: str, nbytes: int, quota: int) -> tuple[int, int]:
        """Count the segment `chain` (hex) of `nbytes` against `tenant`'s uploads unless that would pass
        `quota`; (REFUSED, NEWLY or ALREADY counted, the bytes counted before)."""
        raise NotImplementedError

    def release_graph_bytes(self, tenant: str, chain: str, nbytes: int) -> None:
        """Stop counting a claimed segment (its upload failed)."""
        raise NotImplementedError

    # workers
    def register_worker(self, worker_id: str, info: dict, ttl_s: float) -> None:
        raise NotImplementedError

    def unregister_worker(self, worker_id: str) -> None:
        raise NotImplementedError

    def live_workers(self) -> list[dict]:
        raise NotImplementedError

    # runs that killed their worker (graphexec.server.poison), for shared stores
    def add_poison(self, member: str, ttl_s: float, keep: int) -> None:
        """List `member` for `ttl_s` seconds, keeping at most `keep` members (the latest)."""
        raise NotImplementedError

    def poison_list(self) -> list[tuple[str, float]]:
        """(member, wall-clock expiry) of the members listed and not expired."""
        raise NotImplementedError

    def ping(self) -> None:
        """UnavailableError when the store cannot be reached (readiness checks call it)."""

    def close(self) -> None:
        pass


class _Container:
    def __init__(self):
        self.version = 0
        self.variables: dict[str, np.ndarray] = {}
        self.applied: OrderedDict[int, tuple[float, bytes]] = OrderedDict()
        self.lock = threading.Lock()


class _Held:
    """`with` holds `lock` (a plain class: in-process training steps take it on every run)."""

    __slots__ = ("lock", "timeout_s", "container")

    def __init__(self, lock, timeout_s: float, container: str):
        self.lock, self.timeout_s, self.container = lock, timeout_s, container

    def __enter__(self):
        if not self.lock.acquire(timeout=max(self.timeout_s, 0)):
            raise errors.DeadlineExceededError(None, None, f"timed out waiting for the update lock of container "
                                                           f"'{self.container}'")

    def __exit__(self, *exc):
        self.lock.release()


class MemoryStore(Store):
    """Everything in this process: in-process sessions and the embedded server, nothing else to start."""

    description = "in-memory store"

    def __init__(self, max_blob_bytes: int = MAX_BLOB_BYTES):
        # Bounded like Redis's TTLs bound it: a dropped graph is sent again by its client, a dropped
        # plan compiled again, a session unused the longest is gone (NOT_FOUND).
        self._blobs = BoundedCache(MAX_BLOBS, max_blob_bytes)
        self._sessions = BoundedCache(MAX_SESSIONS)
        self._tenant_sessions: dict[str, set[str]] = {}
        self._tenant_graphs: dict[str, dict[str, int]] = {}  # tenant -> segment chain -> bytes
        self._tenant_bytes: dict[str, int] = {}  # tenant -> bytes of its stored variables
        self._containers: dict[str, _Container] = {}
        self._workers: dict[str, tuple[float, dict]] = {}
        self._guard = threading.Lock()

    def get_blob(self, kind, key):
        return self._blobs.get((kind, key))

    def get_blob_head(self, kind, key, nbytes):
        blob = self._blobs.get((kind, key))
        return None if blob is None else blob[:nbytes]

    def put_blob(self, kind, key, data):
        self._blobs.put((kind, key), data, len(data))

    def get_session(self, handle):
        return self._sessions.get(handle)

    def put_session(self, handle, record):
        self._sessions.put(handle, record, len(record))

    def delete_session(self, handle):
        self._sessions.pop(handle)

    def claim_session(self, tenant, handle, limit):
        with self._guard:
            held = self._tenant_sessions.setdefault(tenant, set())
            if len(held) >= limit:  # forget sessions dropped from the bounded table
                held.intersection_update(h for h in list(held) if h in self._sessions)
            if len(held) >= limit:
                return False
            held.add(handle)
            return True

    def release_session(self, tenant, handle):
        with self._guard:
            self._tenant_sessions.get(tenant, set()).discard(handle)

    def claim_graph_bytes(self, tenant, chain, nbytes, quota):
        with self._guard:
            held = self._tenant_graphs.setdefault(tenant, {})
            if chain in held:
                return ALREADY, sum(held.values())
            used = sum(held.values())
            if used + nbytes > quota:  # forget segments the bounded cache dropped
                for gone in [c for c in held if ("segment", c) not in self._blobs]:
                    del held[gone]
                used = sum(held.values())
                if used + nbytes > quota:
                    return REFUSED, used
            held[chain] = nbytes
            return NEWLY, used

    def release_graph_bytes(self, tenant, chain, nbytes):
        with self._guard:
            self._tenant_graphs.get(tenant, {}).pop(chain, None)

    def _container(self, name: str) -> _Container:
        container = self._containers.get(name)
        if container is None:
            with self._guard:
                container = self._containers.setdefault(name, _Container())
        return container

    def begin_run(self, container, request_id):
        c = self._container(container)
        entry = c.applied.get(request_id) if request_id else None
        if entry is not None and entry[0] < time.monotonic():
            entry = None
        return c.version, entry[1] if entry is not None else None

    def read_variables(self, container):
        c = self._container(container)
        with self._guard:
            return c.version, dict(c.variables)

    def commit(self, container, base_version, updates, request_id, result, added_bytes=0, staging=None):
        c = self._container(container)
        with self._guard:
            entry = c.applied.get(request_id) if request_id else None
            if entry is not None and entry[0] >= time.monotonic():
                raise AlreadyApplied(entry[1])
            if c.version != base_version:
                raise errors.AbortedError(None, None, f"variables of container '{container}' changed during "
                                                      f"the run (version {base_version} -> {c.version}); retry")
            if added_bytes:
                tenant = tenant_of(container)
                used = self._tenant_bytes.get(tenant, 0)
                if added_bytes > 0 and self.variable_quota is not None and used + added_bytes > self.variable_quota:
                    raise over_quota("stored variables", tenant, used, added_bytes, self.variable_quota,
                                     "--max-variable-bytes-per-tenant")
                self._tenant_bytes[tenant] = used + added_bytes
            c.variables.update(updates)
            c.version += 1
            if request_id:
                c.applied[request_id] = (time.monotonic() + APPLIED_TTL_S, result)
                while len(c.applied) > MAX_APPLIED_IN_MEMORY:
                    c.applied.popitem(last=False)
            return c.version

    def reset(self, container):
        with self._guard:
            c = self._containers.get(container)
            if c is not None:
                tenant = tenant_of(container)
                freed = sum(getattr(v, "nbytes", 0) for v in c.variables.values())
                self._tenant_bytes[tenant] = max(self._tenant_bytes.get(tenant, 0) - freed, 0)
                c.variables.clear()
                c.version += 1

    def lock(self, container, timeout_s=DEFAULT_LOCK_TIMEOUT_S, owner=0):
        return _Held(self._container(container).lock, timeout_s, container)

    def register_worker(self, worker_id, info, ttl_s):
        self._workers[worker_id] = (time.monotonic() + ttl_s, dict(info))

    def unregister_worker(self, worker_id):
        self._workers.pop(worker_id, None)

    def live_workers(self):
        now = time.monotonic()
        return [info for expiry, info in list(self._workers.values()) if expiry > now]
