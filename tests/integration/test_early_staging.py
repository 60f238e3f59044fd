"""Early staging (server/staging.py) against a real redis-server: a run's large new values travel to Redis
while the run goes on, and the commit applies them with the rest; a run that fails after staging, a
commit that aborts or finds its request applied, and a script Redis forgot leave no staged key behind and
lose nothing; a staging connection that breaks makes the commit send everything itself."""
from __future__ import annotations

import numpy as np
import pytest
import redis

import graphexec as tf
from graphexec import errors
from graphexec.runtime.store import AlreadyApplied
from graphexec.runtime.worker import PlanCall, WorkerCore
from graphexec.server import staging as staging_module
from graphexec.server.redis_store import PREFIX, RedisStore
from graphexec.session import InProcessRunner
from conftest import free_port  # tests/integration is on sys.path (rootdir-relative conftest)

pytestmark = pytest.mark.timeout(120)
BIG = (640, 512)  # 1.25 MiB of float32: staged early
STEP = 0.5


def _initial():
    rng = np.random.default_rng(3)
    return {"w": (rng.standard_normal(BIG) * 0.01).astype(np.float32), "b": np.zeros(BIG[1], np.float32)}


def _graph():
    """A step that updates a large `w` and a small `b`, then (after the updates) does more work, which fails
    its check_numerics when `poison` is NaN. Returns (graph, x, poison, train, after, loss)."""
    initial = _initial()
    with tf.Graph().as_default() as graph:
        w, b = tf.Variable(initial["w"], name="w"), tf.Variable(initial["b"], name="b")
        x = tf.placeholder(tf.float32, [4, BIG[0]], name="x")
        poison = tf.placeholder(tf.float32, [], name="poison")
        loss = tf.reduce_sum(tf.square(tf.matmul(x, w) + b))
        train = tf.train.GradientDescentOptimizer(STEP).minimize(loss)
        with tf.control_dependencies([train]):  # work after the updates: the staged values travel meanwhile
            after = tf.check_numerics(tf.reduce_sum(tf.tanh(tf.matmul(tf.transpose(x), x))) + poison, "poisoned")
    return graph, x, poison, train, after, loss


def _training_plan():
    """The CachedPlan of one step (feeds x and poison; fetches `after` and the loss), and the initial values."""
    graph, x, poison, _, after, loss = _graph()
    prepared, _, _ = InProcessRunner().prepare(graph, [x.name, poison.name], [after.name, loss.name], [])
    return prepared.cached, _initial()


def _expected(initial, x, steps=1):
    """w and b after `steps` steps, in numpy."""
    w, b = initial["w"].astype(np.float64), initial["b"].astype(np.float64)
    for _ in range(steps):
        dy = 2 * (x @ w + b)
        w, b = w - STEP * x.T @ dy, b - STEP * dy.sum(0)
    return w, b


def _check(store, core, expected_version, steps):
    """The stored values are the worker's own (the same bits: what was staged is what it kept), and right."""
    version, values = store.read_variables("c")
    assert version == expected_version
    hot_version, hot = core._hot[("c", "CPU")]
    assert hot_version == version
    for name, value in zip(("w", "b"), _expected(_initial(), _x(), steps)):
        np.testing.assert_array_equal(values[name], hot[name])
        np.testing.assert_allclose(values[name], value, rtol=1e-4, atol=1e-6)


@pytest.fixture
def stagings(monkeypatch):
    """Every Staging a store makes, in order."""
    made = []
    original = RedisStore.staging

    def recorded(self, container):
        made.append(original(self, container))
        return made[-1]

    monkeypatch.setattr(RedisStore, "staging", recorded)
    return made


def _setup(url, initial):
    store, client = RedisStore(url), redis.Redis.from_url(url)
    store.commit("c", 0, dict(initial), 0, b"", sum(v.nbytes for v in initial.values()))
    return store, client, WorkerCore(store, feeds_owned=False)


def _x():
    return (np.random.default_rng(5).standard_normal((4, BIG[0])) * 0.1).astype(np.float32)


def test_a_large_new_value_is_staged_during_the_run_and_the_commit_applies_it(redis_server, stagings):
    cached, initial = _training_plan()
    store, client, core = _setup(redis_server.url, initial)
    try:
        core.run(PlanCall("c", cached.key, [_x(), np.float32(0)], request_id=1), cached)  # reads, loads scripts
        client.config_resetstat()
        result = core.run(PlanCall("c", cached.key, [_x(), np.float32(0)], request_id=2), cached)  # hot: commits only
        assert not result.deduplicated
        assert set(stagings[-1].staged) == {"w"}  # b (2 KB) went with the commit
        calls = {name: s["calls"] for name, s in client.info("commandstats").items()}
        assert calls["cmdstat_evalsha"] == 1 and calls["cmdstat_set"] == 3  # w early, b, the request id's result
        _check(store, core, 3, steps=2)
        assert not client.keys(f"{PREFIX}stage:*")
        assert store.begin_run("c", 2)[1] is not None  # the request id was recorded with it
    finally:
        store.close()


def test_a_run_that_fails_after_staging_deletes_what_it_staged_and_changes_nothing(redis_server):
    cached, initial = _training_plan()
    store, client, core = _setup(redis_server.url, initial)
    try:
        client.config_resetstat()
        with pytest.raises(errors.InvalidArgumentError, match="poisoned"):
            core.run(PlanCall("c", cached.key, [_x(), np.float32("nan")], request_id=1), cached)
        calls = {name: s["calls"] for name, s in client.info("commandstats").items()}
        assert calls["cmdstat_set"] == 1 and calls["cmdstat_del"] == 1  # w was staged before the failure, then deleted
        assert not client.keys(f"{PREFIX}stage:*")
        version, values = store.read_variables("c")
        assert version == 1
        np.testing.assert_array_equal(values["w"], initial["w"])
        core.run(PlanCall("c", cached.key, [_x(), np.float32(0)], request_id=2), cached)  # the next run goes on
        _check(store, core, 2, steps=1)
    finally:
        store.close()


def test_a_staging_connection_that_breaks_leaves_the_commit_to_send_everything(redis_server, stagings, monkeypatch):
    cached, initial = _training_plan()
    store, client, core = _setup(redis_server.url, initial)
    nowhere = free_port()  # nothing listens there: the staging connection cannot connect
    lanes, taken = store._lanes, []
    original = lanes.take

    def take():  # the first connection taken (the staging's) goes nowhere; the commit's are Redis's
        if taken:
            return original()
        taken.append(redis.Connection(host="127.0.0.1", port=nowhere, socket_connect_timeout=1))
        return taken[-1]

    monkeypatch.setattr(lanes, "take", take)
    try:
        core.run(PlanCall("c", cached.key, [_x(), np.float32(0)], request_id=1), cached)
        assert taken and not stagings[-1].staged  # the send failed: nothing counted as staged
        _check(store, core, 2, steps=1)
        assert not client.keys(f"{PREFIX}stage:*")
    finally:
        store.close()


def _staged(store, name, value):
    staging = store.staging("c")
    staging.offer(name, value)
    return staging


def test_commits_that_abort_or_replay_or_reload_the_script_leave_no_staged_key(redis_server):
    store, client = RedisStore(redis_server.url), redis.Redis.from_url(redis_server.url)
    big = np.full(BIG, 2, np.float32)
    try:
        store.commit("c", 0, {"w": np.zeros(BIG, np.float32)}, 1, b"first", big.nbytes)
        with pytest.raises(AlreadyApplied):  # a replay of request 1
            store.commit("c", 1, {"w": big}, 1, b"again", staging=_staged(store, "w", big))
        with pytest.raises(errors.AbortedError, match="version 0 -> 1"):
            store.commit("c", 0, {"w": big}, 2, b"", staging=_staged(store, "w", big))
        assert not client.keys(f"{PREFIX}stage:*")
        # offered, then not among the updates: deleted by the commit
        assert store.commit("c", 1, {"v": np.ones(2, np.float32)}, 3, b"", 8, staging=_staged(store, "w", big)) == 2
        assert not client.keys(f"{PREFIX}stage:*")
        client.script_flush()  # as after a Redis restart: the commit loads its script and sends everything again
        assert store.commit("c", 2, {"w": big}, 4, b"", staging=_staged(store, "w", big)) == 3
        version, values = store.read_variables("c")
        assert version == 3 and set(values) == {"w", "v"}
        np.testing.assert_array_equal(values["w"], big)
        assert not client.keys(f"{PREFIX}stage:*")
    finally:
        store.close()


def test_small_values_are_not_staged_early(redis_server):
    store = RedisStore(redis_server.url)
    try:
        staging = store.staging("c")
        staging.offer("small", np.zeros(staging_module.EARLY_BYTES // 4 - 1, np.float32))
        assert not staging.staged and staging.finish() is None
    finally:
        store.close()
