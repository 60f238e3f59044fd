"""The in-memory store's per-tenant quotas, and a compile process's requests answered in this process
(graphexec.server.compile_process.answer: the same code the child runs between its pipes)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import convert
from graphexec.runtime.store import ALREADY, NEWLY, REFUSED, MemoryStore
from graphexec.server import compile_process
from graphexec.server.graphs import GraphLibrary


def test_a_commit_that_grows_a_tenants_variables_past_its_quota_is_refused_and_stores_nothing():
    store = MemoryStore()
    store.variable_quota = 1000
    store.commit("alice/", 0, {"a": np.zeros(200, np.float32)}, 0, b"", added_bytes=800)
    with pytest.raises(errors.ResourceExhaustedError, match=r"tenant 'alice' is over its quota of stored variables: "
                                                            r"800 bytes stored, 400 more asked, 1000 allowed"):
        store.commit("alice/other", 0, {"b": np.zeros(100, np.float32)}, 0, b"", added_bytes=400)
    assert store.read_variables("alice/other") == (0, {})
    store.commit("alice/", 1, {"a": np.ones(200, np.float32)}, 0, b"", added_bytes=0)  # same size: not checked
    store.commit("bob/", 0, {"b": np.zeros(200, np.float32)}, 0, b"", added_bytes=800)  # bob's own quota
    store.reset("alice/")
    store.commit("alice/other", 0, {"b": np.zeros(100, np.float32)}, 0, b"", added_bytes=400)


def test_uploaded_graph_bytes_count_once_per_segment_while_stored():
    store = MemoryStore()
    for chain in ("c1", "c2"):
        store.put_blob("segment", chain, b"." * 600)
    assert store.claim_graph_bytes("alice", "c1", 600, 1000) == (NEWLY, 0)
    assert store.claim_graph_bytes("alice", "c1", 600, 1000) == (ALREADY, 600)  # the same segment again
    assert store.claim_graph_bytes("alice", "c2", 600, 1000) == (REFUSED, 600)
    assert store.claim_graph_bytes("bob", "c2", 600, 1000) == (NEWLY, 0)
    store.release_graph_bytes("alice", "c1", 600)
    assert store.claim_graph_bytes("alice", "c2", 600, 1000) == (NEWLY, 0)


def _segment_blob(graph) -> tuple[bytes, str]:
    nodes, seed, _, chain, _ = graph.snapshot()
    segment = spb.GraphSegment(node_count=len(nodes), chain=chain, seed=seed)
    segment.nodes.CopyFrom(convert.graph_to_proto(nodes))
    return convert.segment_to_bytes(segment), chain.hex()


def test_a_compile_process_checks_a_graph_and_returns_its_plan_serialized():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [3], name="x")
        y = tf.reduce_sum(x * 2.0, name="y")
    blob, chain = _segment_blob(graph)
    library = GraphLibrary(MemoryStore())
    assert compile_process.answer(library, {"op": "check"}, [blob]) == ({"ok": True, "node_count": 4}, None)
    header = {"op": "compile", "chain": chain, "feeds": ["x:0"], "fetches": [y.name], "targets": [], "seed": None,
              "graph_digest": "0" * 64, "memory_budget": 1 << 30}
    reply, plan = compile_process.answer(library, json.loads(json.dumps(header)), [blob])
    assert reply == {"ok": True}
    assert [e.tensor for e in convert.plan_from_bytes(plan).fetches] == [y.name]
    with pytest.raises(errors.InvalidArgumentError, match="Cannot fetch 'z:0'"):
        compile_process.answer(library, {**header, "fetches": ["z:0"]}, [blob])
    forged = convert.segment_from_bytes(blob)
    forged.chain = b"\1" * 32
    with pytest.raises(errors.InvalidArgumentError, match="not the claimed 0101010101010101"):
        compile_process.answer(GraphLibrary(MemoryStore()), {"op": "check"}, [convert.segment_to_bytes(forged)])
