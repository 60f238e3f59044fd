"""Session records: which graph a session holds, its variable container and its settings.

Records live in the store (JSON) so that any replica can serve any session; each replica caches the
ones it has seen. A record only changes when its graph grows, so a cached record is stale only if
the client talks about more nodes than it has (runs say how many they mean).
"""
from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, replace

from graphexec import digest, errors
from graphexec.runtime.bounded import BoundedCache
from graphexec.runtime.store import Store, store_container

MAX_CACHED_SESSIONS = 100_000


@dataclass(frozen=True)
class SessionRecord:
    handle: str
    tenant: str = ""
    container: str = ""
    allow_soft_placement: bool = True
    default_timeout_ms: int = 0
    chain: str = digest.CHAIN_START.hex()  # chain state of the session's graph
    node_count: int = 0
    seed: int | None = None

    @property
    def variable_container(self) -> str:
        """The store's name for the session's container: the tenant's own."""
        return store_container(self.tenant, self.container)

    @property
    def graph_digest(self) -> str:
        return digest.finish(bytes.fromhex(self.chain), self.seed)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionRecord:
        return cls(**json.loads(data))


class SessionTable:
    def __init__(self, store: Store, max_per_tenant: int = 10_000):
        self.store = store
        self.max_per_tenant = max_per_tenant
        self._cache = BoundedCache(MAX_CACHED_SESSIONS)  # the store has them all

    def create(self, tenant: str, container: str, allow_soft_placement: bool, default_timeout_ms: int
               ) -> SessionRecord:
        record = SessionRecord(secrets.token_hex(16), tenant, container, allow_soft_placement,
                               max(default_timeout_ms, 0))
        if not self.store.claim_session(tenant, record.handle, self.max_per_tenant):
            raise errors.ResourceExhaustedError(None, None, f"this tenant has {self.max_per_tenant} open sessions, "
                                                            f"the limit (--max-sessions-per-tenant): close some")
        self._save(record)
        return record

    def get(self, handle: str, tenant: str, min_node_count: int = 0, graph_digest: str = "") -> SessionRecord:
        """The record of `tenant`'s session `handle`; another tenant's session is NOT_FOUND, as if it
        did not exist."""
        record = self._cache.get(handle)
        if (record is None or record.node_count < min_node_count
                or graph_digest and record.graph_digest != graph_digest):
            data = self.store.get_session(handle)
            if data is None:
                raise _no_session(handle)
            record = SessionRecord.from_bytes(data)
            self._cache.put(handle, record)
        if record.tenant != tenant:
            raise _no_session(handle)
        if record.node_count < min_node_count or graph_digest and record.graph_digest != graph_digest:
            raise errors.FailedPreconditionError(
                None, None, f"session holds graph {record.graph_digest[:16]} of {record.node_count} nodes; the "
                            f"request means {graph_digest[:16] or 'one'} of {min_node_count}: extend the session "
                            f"first")
        return record

    def set_graph(self, record: SessionRecord, chain: bytes, node_count: int, seed) -> SessionRecord:
        updated = replace(record, chain=chain.hex(), node_count=node_count, seed=seed)
        if updated != record:
            self._save(updated)
        return updated

    def close(self, handle: str, tenant: str) -> None:
        try:
            self.get(handle, tenant)
        except errors.NotFoundError:
            return  # closed already (or not the caller's to close)
        self.store.delete_session(handle)
        self.store.release_session(tenant, handle)
        self._cache.pop(handle)

    def _save(self, record: SessionRecord) -> None:
        self.store.put_session(record.handle, record.to_bytes())
        self._cache.put(record.handle, record)


def _no_session(handle: str) -> errors.NotFoundError:
    return errors.NotFoundError(None, None, f"session '{handle[:40]}' does not exist (closed, or never created on "
                                            f"this service)")
