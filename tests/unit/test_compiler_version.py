"""Plans are shared through the store under keys that name the compiler: a plan stored by another version
of graphexec (a rolling upgrade, a Redis kept across releases) is neither found nor run."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors
from graphexec.compiler.plan import PACKAGE_ROOT, compiler_version, source_version
from graphexec.proto.v1 import graph_pb2 as pb
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import convert
from graphexec.runtime.store import MemoryStore
from graphexec.runtime.worker import PlanCall, WorkerCore
from graphexec.server import compile_process, plans
from graphexec.server.graphs import GraphLibrary
from graphexec.server.plans import PlanCache, plan_key


def test_the_version_follows_the_source_by_path_and_content(tmp_path):
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "math.py").write_text("def add(a, b):\n    return a + b\n")
    (tmp_path / "ir.py").write_text("NODE = 1\n")
    first = source_version(tmp_path)
    assert first == source_version(tmp_path)
    assert first.startswith("graphexec-compiler-1+")
    (tmp_path / "ops" / "math.py").write_text("def add(a, b):\n    return b + a\n")
    changed = source_version(tmp_path)
    assert changed != first
    (tmp_path / "ops" / "math.py").rename(tmp_path / "ops" / "math2.py")
    assert source_version(tmp_path) not in (first, changed)
    assert compiler_version() == source_version(PACKAGE_ROOT)


def test_the_version_is_part_of_every_plan_key(monkeypatch):
    key = plan_key("d" * 64, ["x:0"], ["y:0"], [], ["CPU"])
    assert key == plan_key("d" * 64, ["x:0"], ["y:0"], [], ["CPU"])
    monkeypatch.setattr(plans, "compiler_version", lambda: "graphexec-compiler-1+0123456789abcdef")
    assert plan_key("d" * 64, ["x:0"], ["y:0"], [], ["CPU"]) != key


def _plan_blob() -> tuple[bytes, str]:
    """A plan of y = sum(x * 2) as the store keeps it, and y's name."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [3], name="x")
        y = tf.reduce_sum(x * 2.0, name="y")
    nodes, seed, _, chain, _ = graph.snapshot()
    segment = spb.GraphSegment(node_count=len(nodes), chain=chain, seed=seed)
    segment.nodes.CopyFrom(convert.graph_to_proto(nodes))
    header = {"op": "compile", "chain": chain.hex(), "feeds": ["x:0"], "fetches": [y.name], "targets": [],
              "seed": None, "graph_digest": "0" * 64, "memory_budget": 1 << 30}
    reply, blob = compile_process.answer(GraphLibrary(MemoryStore()), header, [convert.segment_to_bytes(segment)])
    assert reply == {"ok": True}
    return blob, y.name


def _stamped(blob: bytes, version: str) -> bytes:
    msg = pb.Plan.FromString(blob)
    msg.compiler_version = version
    return msg.SerializeToString()


def test_a_plan_is_stamped_with_this_version_and_read_back():
    blob, fetch = _plan_blob()
    assert pb.Plan.FromString(blob).compiler_version == compiler_version()
    plan = convert.plan_from_bytes(blob)
    assert [e.tensor for e in plan.fetches] == [fetch]


@pytest.mark.parametrize("version", ["graphexec-compiler-1", "graphexec-compiler-1+0123456789abcdef", ""])
def test_a_plan_of_another_version_is_refused_by_name(version):
    blob, _ = _plan_blob()
    with pytest.raises(errors.FailedPreconditionError) as caught:
        convert.plan_from_bytes(_stamped(blob, version))
    assert compiler_version() in caught.value.message
    assert (version or "an unknown version") in caught.value.message


def _store_of_both(old: str, current: str) -> MemoryStore:
    """A store holding the same plan under `old`, stamped by another version, and under `current`."""
    store = MemoryStore()
    blob, _ = _plan_blob()
    store.put_blob("plan", old, _stamped(blob, "graphexec-compiler-1"))
    store.put_blob("plan", current, blob)
    return store


def test_a_replica_does_not_serve_a_callable_whose_stored_plan_another_version_compiled():
    """The client's handle then answers NOT_FOUND ("callable ..."), on which clients make the callable again."""
    cache = PlanCache(_store_of_both("old-handle", "new-handle"))
    assert cache.lookup("old-handle") is None
    with pytest.raises(errors.NotFoundError, match="^callable 'old-handle' is not known"):
        cache.get("old-handle")
    found, _ = cache.get("new-handle")
    assert found.key == "new-handle"


def test_a_worker_handed_a_plan_of_another_version_fails_precondition_and_runs_nothing():
    core = WorkerCore(_store_of_both("old", "current"))
    x = np.array([1.0, 2.0, 3.5], np.float32)
    with pytest.raises(errors.FailedPreconditionError, match="compiled by graphexec-compiler-1, this process is"):
        core.run(PlanCall("", "old", [x]))
    (y,) = core.run(PlanCall("", "current", [x])).fetches
    assert y == pytest.approx(13.0)
