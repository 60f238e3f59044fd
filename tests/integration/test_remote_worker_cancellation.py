"""A server's RemoteWorker against a real `graphexec worker`. One Cancellation serves a whole Run stream,
so each run's cancel hook must go when the run ends (else a long stream keeps one per run it carried).
Over the direct link and over gRPC RunPlan. (A cancel reaching the worker: test_redis_commit.py.) And a
worker whose direct port is blocked on the way is run over its Worker API instead."""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import redis

import graphexec as tf
from graphexec.rpc import convert
from graphexec.runtime.worker import Cancellation, PlanCall
from graphexec.server.pool import RemoteWorker
from graphexec.server.redis_store import PREFIX, RedisStore
from graphexec.session import InProcessRunner

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["direct link", "gRPC RunPlan"])
def remote_worker(request, redis_server, worker):
    process = worker(redis_server.url, *(("--direct-port", "-1") if request.param == "gRPC RunPlan" else ()))
    info = json.loads(redis.Redis.from_url(redis_server.url).get(f"{PREFIX}worker:{process.match.group(1)}"))
    assert (info.get("direct_port", -1) > 0) == (request.param == "direct link")
    return RemoteWorker(info), RedisStore(redis_server.url)


def test_a_shared_cancellation_keeps_no_hook_of_a_finished_run(remote_worker):
    remote, store = remote_worker
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        y = x * 2.0
    prepared, _, _ = InProcessRunner().prepare(graph, [x.name], [y.name], [])
    store.put_blob("plan", prepared.cached.key, convert.plan_to_bytes(prepared.cached.plan))
    stream = Cancellation()  # as a Run stream's, shared by every run it carries
    for i in range(20):
        rows = np.full((2, 3), i, np.float32)
        result = remote.run(PlanCall("t/", prepared.cached.key, [rows], cancellation=stream), prepared.cached)
        np.testing.assert_array_equal(result.fetches[0], rows * 2.0)
    assert stream._callbacks == []  # every run's hook went with its run


def test_a_worker_whose_direct_port_cannot_be_reached_is_run_over_its_worker_api(redis_server, worker):
    process = worker(redis_server.url)
    info = json.loads(redis.Redis.from_url(redis_server.url).get(f"{PREFIX}worker:{process.match.group(1)}"))
    with socket.socket() as probe:  # a port nothing listens on: as if a firewall dropped the direct link
        probe.bind(("127.0.0.1", 0))
        info["direct_port"] = probe.getsockname()[1]
    remote, store = RemoteWorker(info), RedisStore(redis_server.url)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        y = x + 1.0
    prepared, _, _ = InProcessRunner().prepare(graph, [x.name], [y.name], [])
    store.put_blob("plan", prepared.cached.key, convert.plan_to_bytes(prepared.cached.plan))
    for i in range(3):
        rows = np.full((1, 3), i, np.float32)
        result = remote.run(PlanCall("t/", prepared.cached.key, [rows]), prepared.cached)
        np.testing.assert_array_equal(result.fetches[0], rows + 1.0)
    assert remote._link is None  # set aside after the first failed connect, not tried per run
