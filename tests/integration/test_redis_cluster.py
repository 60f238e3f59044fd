"""Two `serve --redis` replicas and two workers on a private Redis: shared variables and plans,
a step whose worker is killed fails ABORTED (not resent) and loses nothing, and fast failure while Redis
is away."""
from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors
from graphexec.client.remote import RemoteSession
from graphexec.client.retry import NO_RETRY

from conftest import deadline_model  # tests/integration is on sys.path (rootdir-relative conftest)

pytestmark = pytest.mark.timeout(180)


class Cluster:
    def __init__(self, redis_server, serve, worker, wait_for_workers):
        self.redis = redis_server
        self.workers = [worker(redis_server.url) for _ in range(2)]
        self.a = serve("--redis", redis_server.url)
        self.b = serve("--redis", redis_server.url)
        for target in (self.a, self.b):
            wait_for_workers(target, 2)

    def worker_process(self, worker_name: str):
        worker_id = worker_name.split("@")[0]
        return next(w for w in self.workers if w.match.group(1) == worker_id)


@pytest.fixture
def cluster(redis_server, serve, worker, wait_for_workers):
    return Cluster(redis_server, serve, worker, wait_for_workers)


def _model(seconds_per_step: float = 0.0):
    """A small regression model with a global step; optionally a slow step (for killing mid-step)."""
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(3)
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        y = tf.placeholder(tf.float32, [None, 1], name="y")
        w = tf.Variable(tf.random_normal([4, 1], stddev=0.1), name="w")
        prediction = tf.matmul(x, w)
        if seconds_per_step:
            slow = tf.placeholder(tf.float32, [None, None], name="slow")
            burn = slow
            for _ in range(8):
                burn = tf.tanh(tf.matmul(burn, slow))
            prediction = prediction + 0.0 * tf.reduce_sum(burn)
        loss = tf.reduce_mean(tf.square(prediction - y))
        step = tf.train.get_or_create_global_step()
        train = tf.train.GradientDescentOptimizer(0.05).minimize(loss, global_step=step)
        init = tf.global_variables_initializer()
    return graph, dict(x=x, y=y, w=w, loss=loss, step=step, train=train, init=init,
                       slow=graph.get_tensor_by_name("slow:0") if seconds_per_step else None)


def _batch(i):
    rng = np.random.default_rng(i)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    return x, x @ np.array([[1.0], [-1.0], [2.0], [0.5]], np.float32)


def test_replica_b_continues_where_replica_a_left_off(cluster):
    graph, m = _model()
    with tf.Session(cluster.a, graph=graph) as sess:
        sess.run(m["init"])
        for i in range(5):
            x, y = _batch(i)
            sess.run([m["train"], m["loss"]], {m["x"]: x, m["y"]: y})
        weights_a = sess.run(m["w"])

    graph, m = _model()  # a fresh copy of the graph, as another client process would build it
    with tf.Session(cluster.b, graph=graph) as sess:
        assert sess.run(m["step"]) == 5  # no initializer: B sees A's variables
        np.testing.assert_array_equal(sess.run(m["w"]), weights_a)
        metadata = tf.RunMetadata()
        x, y = _batch(5)
        sess.run([m["train"], m["loss"]], {m["x"]: x, m["y"]: y}, run_metadata=metadata)
        assert metadata.plan_cache_hit and metadata.plan_source == "store"  # compiled by A, not by B
        assert sess.run(m["step"]) == 6


def test_killing_the_worker_mid_training_loses_and_doubles_nothing(cluster):
    graph, m = _model(seconds_per_step=0.05)
    slow = np.random.default_rng(0).normal(size=(300, 300)).astype(np.float32) * 0.05
    acknowledged, failures, died, workers_seen = [], [], [], set()
    stop = threading.Event()

    def train():
        with tf.Session(cluster.a, graph=graph) as sess:
            sess.run(m["init"])
            i = 0
            while not stop.is_set():
                x, y = _batch(i)
                metadata = tf.RunMetadata()
                try:
                    sess.run(m["train"], {m["x"]: x, m["y"]: y, m["slow"]: slow}, run_metadata=metadata)
                except errors.AbortedError as exc:  # the step the worker died running: not resent, not applied
                    died.append(exc)
                    i += 1
                    continue
                except errors.OpError as exc:
                    failures.append(exc)
                    return
                acknowledged.append(i)
                if metadata.worker:  # a step committed before its worker died is answered from the store: no worker
                    workers_seen.add(metadata.worker)
                i += 1

    trainer = threading.Thread(target=train)
    trainer.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 5 and trainer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    victim = cluster.worker_process(next(iter(workers_seen)))
    victim.signal(signal.SIGKILL)  # in the middle of a step, most likely
    steps_at_kill = len(acknowledged)
    while len(acknowledged) < steps_at_kill + 5 and trainer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    trainer.join(timeout=60)
    assert not failures, failures
    assert len(died) <= 1 and all("died while running this run" in exc.message for exc in died)
    assert len(workers_seen) == 2  # training moved to the other worker
    graph, m = _model()
    with tf.Session(cluster.b, graph=graph) as sess:
        assert sess.run(m["step"]) == len(acknowledged)


def test_redis_away_fails_fast_with_unavailable_then_service_resumes(cluster):
    graph, m = _model()
    with tf.Session(cluster.a, graph=graph) as sess:
        sess.run(m["init"])
    x, y = _batch(0)
    feeds = {m["x"]: x, m["y"]: y}
    session = RemoteSession(cluster.a, graph, retry=NO_RETRY)
    try:
        session.run(m["train"], feeds)
        cluster.redis.process.signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(errors.UnavailableError, match="Redis"):
                session.run(m["train"], feeds)
            assert time.monotonic() - started < 5.0
        finally:
            cluster.redis.process.signal(signal.SIGCONT)
    finally:
        session.close()
    with tf.Session(cluster.a, graph=graph) as sess:  # default retries ride out the re-registration
        sess.run(m["train"], feeds)
        assert sess.run(m["step"]) == 2


def test_a_retried_request_id_is_answered_once_on_any_replica(cluster):
    """The same RunCallable (same request id) sent to A, then retried on B: applied once, same answer."""
    import grpc

    from graphexec.rpc import codec
    from graphexec.proto.v1 import service_pb2 as spb

    graph = tf.Graph()
    with graph.as_default():
        counter = tf.Variable(0, name="retried_counter")
        bump = counter.assign_add(1)
    with tf.Session(cluster.a, graph=graph, config=tf.ConfigProto(container="retries")) as sess:
        sess.run(counter.initializer)
        made = sess._callable([], [bump.name], [])
        request = spb.RunCallableRequest(session_handle=sess._handle, callable_handle=made.handle, request_id=4242,
                                         options=spb.RunOptions(return_metadata=True))
        data = codec.encode_tensor_message(request, "feeds", [])
        answers = []
        for target in (cluster.a, cluster.b, cluster.a):
            with grpc.insecure_channel(target.removeprefix("grpc://")) as channel:
                reply = channel.unary_unary("/graphexec.v1.GraphExecService/RunCallable")(data, timeout=10)
            response, fetches, _ = codec.decode_tensor_message(spb.RunCallableResponse, reply, "fetches")
            answers.append((int(fetches[0]), response.metadata.deduplicated))
        assert answers == [(1, False), (1, True), (1, True)]
        assert sess.run(counter) == 1


def test_concurrent_updates_through_both_replicas_are_serialized(cluster):
    def build():
        graph = tf.Graph()
        with graph.as_default():
            counter = tf.Variable(0, name="shared_counter")
            bump = counter.assign_add(1)
        return graph, counter, bump

    config = tf.ConfigProto(container="serialized")
    graph, counter, bump = build()
    with tf.Session(cluster.a, graph=graph, config=config) as sess:
        sess.run(counter.initializer)
    failures = []

    def bump_many(target):
        graph, counter, bump = build()
        try:
            with tf.Session(target, graph=graph, config=config) as sess:
                for _ in range(25):
                    sess.run(bump)
        except errors.OpError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=bump_many, args=(t,)) for t in (cluster.a, cluster.b, cluster.a)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    with tf.Session(cluster.b, graph=graph, config=config) as sess:
        assert sess.run(counter) == 75


def test_the_deadline_travels_to_the_worker(cluster):
    graph, x, counter, long_update, quick_update, value = deadline_model()
    with tf.Session(cluster.a, graph=graph, config=tf.ConfigProto(container="deadline")) as sess:
        sess.run(counter.initializer)
        with pytest.raises(errors.DeadlineExceededError):
            sess.run(long_update, {x: value}, options=tf.RunOptions(timeout_in_ms=50))
        started = time.monotonic()
        assert sess.run(quick_update) == 1  # the worker stopped: the container's lock is free, nothing applied
        assert time.monotonic() - started < 1.0
