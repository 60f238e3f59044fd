"""Content-addressed graphs on the server.

A graph is named by its chain state (graphexec/digest.py) and stored as a chain of segments: each
segment holds the nodes that extend a prefix, and names the prefix by its chain state. Segments are
blobs in the store ("segment", chain hex), so any replica can reassemble a graph that another one
received. Decoding re-infers every node's output types from its op's rules (never trusting the
client) and recomputes the chain over the decoded nodes: a segment whose nodes do not hash to the
chain it claims is rejected.

Assembled graphs are cached in-process (least recently used first out, bounded in count and in
bytes: an unused graph is dropped, and decoded again from the store should a session need it). Extending a cached graph
copies its type table once (O(nodes)), which is what lets a TF1 program grow its graph between
runs while sending only the new nodes.
"""
from __future__ import annotations

from dataclasses import dataclass

from graphexec import digest, errors, ir
from graphexec.rpc import convert
from graphexec.rpc.graph_types import GraphTypes
from graphexec.rpc.tensors import DecodeError
from graphexec.runtime.bounded import BoundedCache
from graphexec.runtime.store import Store

MAX_CACHED_GRAPHS = 256
MAX_CACHED_GRAPH_BYTES = 256 << 20
EMPTY = digest.CHAIN_START


@dataclass(frozen=True)
class StoredGraph:
    chain: bytes
    nodes: tuple[ir.Node, ...]
    types: GraphTypes


_EMPTY_GRAPH = StoredGraph(EMPTY, (), GraphTypes())


class GraphLibrary:
    def __init__(self, store: Store, max_bytes: int = MAX_CACHED_GRAPH_BYTES):
        self.store = store
        self._cache = BoundedCache(MAX_CACHED_GRAPHS, max_bytes)

    def has(self, chain: bytes, node_count: int) -> bool:
        """Whether this graph is known (here or in the store), without decoding it."""
        if chain == EMPTY:
            return node_count == 0
        cached = self._cached(chain)
        if cached is not None:
            return len(cached.nodes) == node_count
        # The count comes first in a stored segment: its head says, without fetching and parsing the nodes.
        head = self.store.get_blob_head("segment", chain.hex(), convert.SEGMENT_HEAD_BYTES)
        if head is None:
            return False
        stored_count = convert.segment_node_count(head)
        if stored_count is None:
            blob = self.store.get_blob("segment", chain.hex())
            stored_count = None if blob is None else convert.segment_from_bytes(blob).node_count
        return stored_count == node_count

    def get(self, chain: bytes) -> StoredGraph:
        """The graph with this chain state, assembled from stored segments if not cached."""
        if chain == EMPTY:
            return _EMPTY_GRAPH
        cached = self._cached(chain)
        if cached is not None:
            return cached
        pending = []  # segments from this graph back to the nearest cached (or empty) prefix
        base = None
        while base is None:
            blob = self.store.get_blob("segment", chain.hex())
            if blob is None:
                raise errors.NotFoundError(None, None, f"graph {chain.hex()[:16]} is not known to this server; "
                                                       f"upload it again")
            segment = convert.segment_from_bytes(blob)
            pending.append(segment)
            chain = segment.base_chain or EMPTY
            base = _EMPTY_GRAPH if chain == EMPTY else self._cached(chain)
        for segment in reversed(pending):
            base = self._decode(base, segment)
        return base

    def segment_blobs(self, chain: bytes) -> list[bytes]:
        """The stored segments of the graph with this chain state, oldest first (what a compile process
        decodes: graphexec.server.compile_process)."""
        blobs = []
        while chain != EMPTY:
            blob = self.store.get_blob("segment", chain.hex())
            if blob is None:
                raise errors.NotFoundError(None, None, f"graph {chain.hex()[:16]} is not known to this server; "
                                                       f"upload it again")
            blobs.append(blob)
            chain = convert.segment_from_bytes(blob).base_chain or EMPTY
        return blobs[::-1]

    def put_checked(self, segment, blob: bytes) -> None:
        """Store a segment that a compile process decoded and verified (it is not decoded here)."""
        self.store.put_blob("segment", segment.chain.hex(), blob)

    def add(self, segment) -> StoredGraph:
        """Decode, verify and store a segment that carries its nodes; returns the whole graph."""
        base_chain = segment.base_chain or EMPTY
        if (segment.base_node_count == 0) != (base_chain == EMPTY):
            raise DecodeError("a segment extends the empty graph exactly when base_node_count is 0")
        base = self.get(base_chain)
        if len(base.nodes) != segment.base_node_count:
            raise DecodeError(f"segment claims a prefix of {segment.base_node_count} nodes; the server holds "
                                   f"{len(base.nodes)} for that chain")
        graph = self._decode(base, segment)
        self.store.put_blob("segment", graph.chain.hex(), convert.segment_to_bytes(segment))
        return graph

    def _decode(self, base: StoredGraph, segment) -> StoredGraph:
        carried = len(segment.nodes.nodes)
        if segment.node_count != len(base.nodes) + carried:
            raise DecodeError(f"segment claims {segment.node_count} nodes in all but carries "
                                   f"{carried} after a prefix of {len(base.nodes)}")

        def check_chain(untyped_nodes):  # before the types are inferred: a wrong digest is rejected sooner
            chain = digest.chain(base.chain, untyped_nodes)
            if chain != segment.chain:
                raise DecodeError(f"segment nodes hash to chain {chain.hex()[:16]}, not the claimed "
                                       f"{segment.chain.hex()[:16]}: client and server disagree on the graph")

        types = base.types.copy()
        nodes = convert.nodes_from_proto(segment.nodes, types, check_chain)
        graph = StoredGraph(segment.chain, base.nodes + tuple(nodes), types)
        self._cache.put(graph.chain, graph, segment.ByteSize())
        return graph

    def _cached(self, chain: bytes) -> StoredGraph | None:
        return self._cache.get(chain)
