"""Redis really stopped (not paused) and started again on its append-only file: runs fail fast with
UNAVAILABLE naming Redis while it is gone, and afterwards training continues from every acknowledged step."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors
from graphexec.client.remote import RemoteSession
from graphexec.client.retry import NO_RETRY

from conftest import Process, free_port  # tests/integration is on sys.path (rootdir-relative conftest)

pytestmark = pytest.mark.timeout(180)


class DurableRedis:
    """redis-server with `appendonly yes, appendfsync always`: what docker-compose.yml runs."""

    def __init__(self, processes, data_dir):
        self.processes, self.data_dir = processes, data_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.start()

    def start(self):
        binary = shutil.which("redis-server") or pytest.skip("redis-server is not installed")
        self.process = Process([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                                "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
                               r"Ready to accept connections")
        self.processes.append(self.process)

    def stop(self):
        self.process.kill()  # SIGKILL: only what was fsynced survives


def _model():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 2], name="x")
        w = tf.Variable(tf.zeros([2, 1]), name="w")
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - 1.0))
        step = tf.train.get_or_create_global_step()
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=step)
        init = tf.global_variables_initializer()
    return graph, x, w, step, train, init


def test_redis_stopped_then_restarted_loses_no_acknowledged_step(processes, tmp_path, serve, worker,
                                                                 wait_for_workers):
    redis = DurableRedis(processes, tmp_path)
    worker(redis.url)
    target = serve("--redis", redis.url)
    wait_for_workers(target, 1)
    graph, x, w, step, train, init = _model()
    feed = {x: np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)}
    with tf.Session(target, graph=graph) as sess:
        sess.run(init)
        for _ in range(3):
            sess.run(train, feed)
        w_before = sess.run(w)

    redis.stop()
    started = time.monotonic()
    with pytest.raises(errors.UnavailableError, match="Redis"):  # opening the session already needs Redis
        with RemoteSession(target, graph, retry=NO_RETRY) as session:
            session.run(train, feed)
    assert time.monotonic() - started < 5.0

    redis.start()
    wait_for_workers(target, 1)  # the worker's heartbeat re-registers it
    with tf.Session(target, graph=graph) as sess:
        np.testing.assert_array_equal(sess.run(w), w_before)
        assert sess.run(step) == 3
        sess.run(train, feed)
        assert sess.run(step) == 4


def test_session_records_and_blobs_expire_when_unused_but_variables_never(redis_server):
    import redis

    from graphexec.server import redis_store

    store = redis_store.RedisStore(redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    try:
        store.put_blob("plan", "k", b"plan bytes")
        store.put_session("h", b"{}")
        store.commit("c", 0, {"w": np.ones(2, np.float32)}, 0, b"")
        client.expire(f"{redis_store.PREFIX}blob:plan:k", 5)
        assert store.get_blob("plan", "k") == b"plan bytes"
        assert client.ttl(f"{redis_store.PREFIX}blob:plan:k") > redis_store.BLOB_TTL_S - 60  # refreshed
        assert 0 < client.ttl(f"{redis_store.PREFIX}session:h") <= redis_store.SESSION_TTL_S
        assert client.ttl(f"{redis_store.PREFIX}heads:c") == -1  # no expiry on variables
        assert client.ttl(f"{redis_store.PREFIX}var:c:w") == -1
    finally:
        store.close()
