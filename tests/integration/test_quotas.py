"""Per-tenant quotas on stored variable bytes and uploaded graph bytes, with the in-memory store and with
Redis (where workers check the variable quota as they commit): the tenant over its quota gets
RESOURCE_EXHAUSTED naming the quota, the bytes it holds and the bytes asked; writes that do not grow its
variables (training steps) go on; other tenants are unaffected; a Reset gives the bytes back."""
from __future__ import annotations

import time

import numpy as np
import pytest
from security_setup import ALICE_TOKEN, BOB_TOKEN, client_env, write_tokens

import graphexec as tf
from graphexec import errors

pytestmark = pytest.mark.timeout(240)
QUOTAS = ("--max-variable-bytes-per-tenant", "1MiB")


@pytest.fixture(params=["memory", "redis"])
def target(request, tmp_path, redis_server, serve, worker):
    tokens = write_tokens(tmp_path)
    if request.param == "memory":
        return serve("--auth-tokens", str(tokens), *QUOTAS, "--max-graph-bytes-per-tenant", "2MiB")
    worker(redis_server.url, *QUOTAS)
    target = serve("--redis", redis_server.url, "--auth-tokens", str(tokens), *QUOTAS,
                   "--max-graph-bytes-per-tenant", "2MiB")
    deadline = time.monotonic() + 15
    with client_env(token=ALICE_TOKEN), tf.Session(target, graph=tf.Graph()) as sess:
        while not sess.list_devices():
            assert time.monotonic() < deadline, "no worker registered"
            time.sleep(0.1)
    return target


def _variable(name: str, size: int):
    graph = tf.Graph()
    with graph.as_default():
        v = tf.Variable(tf.zeros([size]), name=name)  # a Fill: the graph upload stays small
        bump = v.assign_add(tf.ones([size]))
        total = tf.reduce_sum(v)
    return graph, v, bump, total


def test_stored_variable_bytes_are_limited_per_tenant(target):
    small, small_v, small_bump, small_total = _variable("small", 100_000)  # 400,000 bytes
    large, large_v, _, large_total = _variable("large", 200_000)  # 800,000 bytes
    with client_env(token=ALICE_TOKEN):
        with tf.Session(target, graph=small) as sess:
            sess.run(small_v.initializer)
        with tf.Session(target, graph=large) as sess:
            with pytest.raises(errors.ResourceExhaustedError,
                               match=r"tenant 'alice' is over its quota of stored variables: 400000 bytes stored, "
                                     r"800000 more asked, 1048576 allowed \(--max-variable-bytes-per-tenant\)"):
                sess.run(large_v.initializer)
        with tf.Session(target, graph=small) as sess:  # updates that do not grow the variables go on
            for _ in range(3):
                sess.run(small_bump)
            assert sess.run(small_total) == 300_000.0
    with client_env(token=BOB_TOKEN), tf.Session(target, graph=large) as sess:  # bob has a quota of his own
        sess.run(large_v.initializer)
        assert sess.run(large_total) == 0.0
    with client_env(token=ALICE_TOKEN):
        tf.Session.reset(target)  # alice's variables are gone, and so is what they counted
        with tf.Session(target, graph=large) as sess:
            sess.run(large_v.initializer)
            assert sess.run(large_total) == 0.0


def _constant_graph(seed: int, count: int):
    graph = tf.Graph()
    with graph.as_default():
        values = np.random.default_rng(seed).random(count, dtype=np.float32)
        total = tf.reduce_sum(tf.constant(values))
    return graph, total, values


def test_uploaded_graph_bytes_are_limited_per_tenant(target):
    first, first_total, first_values = _constant_graph(1, 300_000)  # 1.2 MB uploads
    second, second_total, _ = _constant_graph(2, 300_000)
    with client_env(token=ALICE_TOKEN):
        with tf.Session(target, graph=first) as sess:
            np.testing.assert_allclose(sess.run(first_total), first_values.sum(), rtol=1e-4)
        with tf.Session(target, graph=second) as sess:
            with pytest.raises(errors.ResourceExhaustedError,
                               match=r"tenant 'alice' is over its quota of uploaded graphs: 12\d{5} bytes stored, "
                                     r"12\d{5} more asked, 2097152 allowed \(--max-graph-bytes-per-tenant\)"):
                sess.run(second_total)
        with tf.Session(target, graph=first) as sess:  # the graph it holds runs on (not uploaded again)
            np.testing.assert_allclose(sess.run(first_total), first_values.sum(), rtol=1e-4)
    with client_env(token=BOB_TOKEN), tf.Session(target, graph=second) as sess:
        assert sess.run(second_total) > 0
