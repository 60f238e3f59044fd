"""The Redis data path: a committing step is one pipelined round trip (staged values and a checking
script), which aborts on a moved version or another run's lock and answers a request id already
applied; a client that goes away cancels its run on the worker."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import redis

import graphexec as tf
from graphexec.errors import AbortedError
from graphexec.rpc import tensors
from graphexec.runtime.store import AlreadyApplied
from graphexec.runtime.worker import PlanCall, WorkerCore, run_serialized
from graphexec.server.redis_store import PREFIX, RedisStore
from graphexec.session import InProcessRunner

pytestmark = pytest.mark.timeout(180)


def _calls(client) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


def test_a_commit_is_one_pipeline_of_staged_values_and_one_script(redis_server):
    store, client = RedisStore(redis_server.url), redis.Redis.from_url(redis_server.url)
    try:
        w, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1.5], np.float64)
        store.commit("c", 0, {"w": w}, 7, b"result")  # loads the script (NOSCRIPT once)
        client.config_resetstat()
        assert store.commit("c", 1, {"w": w * 2, "b": b}, 8, b"eight") == 2
        calls = _calls(client)
        # (commands the script runs count too: the staged SETs and the request id's SET make 3)
        assert calls["evalsha"] == 1 and calls["set"] == 3
        assert not {"watch", "multi", "exec", "eval", "script|load"} & set(calls)  # no transaction, no lock
        version, values = store.read_variables("c")
        assert version == 2 and set(values) == {"w", "b"}
        np.testing.assert_array_equal(values["w"], w * 2)
        assert values["b"].dtype == np.float64 and values["b"].tolist() == [1.5]
        assert not client.keys(f"{PREFIX}stage:*")  # staged values were moved into place
        assert store.begin_run("c", 8) == (2, b"eight")
    finally:
        store.close()


def test_a_commit_of_thousands_of_values_applies_them_all_or_drops_them_all(redis_server):
    store, client = RedisStore(redis_server.url), redis.Redis.from_url(redis_server.url)
    try:
        store.commit("c", 0, {"w": np.zeros(3, np.float32)}, 1, b"")
        assert store.commit("c", 1, {f"v{i}": np.full(2, i, np.float32) for i in range(4)}, 2, b"") == 2
        many = {f"m{i}": np.full(1, i, np.int32) for i in range(5000)}
        assert store.commit("c", 2, many, 3, b"") == 3
        version, values = store.read_variables("c")
        assert version == 3 and len(values) == 5005
        assert all(values[f"m{i}"].tolist() == [i] for i in range(0, 5000, 499))
        assert not client.keys(f"{PREFIX}stage:*")
        with pytest.raises(AbortedError, match="version 2 -> 3"):  # an abort drops every staged value
            store.commit("c", 2, many, 4, b"")
        assert not client.keys(f"{PREFIX}stage:*")
    finally:
        store.close()


def test_a_commit_answers_a_seen_request_id_and_aborts_on_a_moved_version_or_another_runs_lock(redis_server):
    store, client = RedisStore(redis_server.url), redis.Redis.from_url(redis_server.url)
    try:
        store.commit("c", 0, {"v": np.zeros(2, np.float32)}, 1, b"first")
        with pytest.raises(AlreadyApplied) as seen:  # a replay: nothing written, the stored result
            store.commit("c", 0, {"v": np.ones(2, np.float32)}, 1, b"again")
        assert seen.value.result == b"first"
        with pytest.raises(AbortedError, match="version 0 -> 1"):
            store.commit("c", 0, {"v": np.ones(2, np.float32)}, 2, b"")
        with store.lock("c", 5.0, owner=3):
            with pytest.raises(AbortedError, match="holds the lock"):
                store.commit("c", 1, {"v": np.ones(2, np.float32)}, 4, b"")
            assert store.commit("c", 1, {"v": np.full(2, 3, np.float32)}, 3, b"") == 2  # the holder's goes in
        version, values = store.read_variables("c")
        assert version == 2 and values["v"].tolist() == [3.0, 3.0]
        assert store.begin_run("c", 2)[1] is None and store.begin_run("c", 4)[1] is None  # aborted: not applied
        assert not client.keys(f"{PREFIX}stage:*")
    finally:
        store.close()


def test_variables_an_earlier_version_wrote_are_read_and_reset(redis_server):
    store, client = RedisStore(redis_server.url), redis.Redis.from_url(redis_server.url)
    try:  # earlier versions kept each variable whole in one hash
        client.hset(f"{PREFIX}vars:c", mapping={"old": tensors.tensor_to_bytes(np.arange(3, dtype=np.int32)),
                                                "both": tensors.tensor_to_bytes(np.zeros(2, np.float32))})
        client.set(f"{PREFIX}version:c", 5)
        assert store.commit("c", 5, {"both": np.ones(2, np.float32)}, 0, b"") == 6
        version, values = store.read_variables("c")
        assert version == 6 and values["old"].tolist() == [0, 1, 2] and values["both"].tolist() == [1.0, 1.0]
        assert client.ttl(f"{PREFIX}var:c:both") == -1  # not the staged key's expiry
        store.reset("c")
        assert store.read_variables("c") == (7, {})
        assert not client.keys(f"{PREFIX}var*:c*") and not client.keys(f"{PREFIX}heads:*")
    finally:
        store.close()


def test_a_redis_restart_reloads_the_commit_script(redis_server):
    store = RedisStore(redis_server.url)
    try:
        store.commit("c", 0, {"v": np.ones(1, np.float32)}, 0, b"")
        redis.Redis.from_url(redis_server.url).script_flush()  # what a restarted Redis has
        assert store.commit("c", 1, {"v": np.ones(1, np.float32)}, 0, b"") == 2
    finally:
        store.close()


_CLIENT = """
import sys
import graphexec as tf
with tf.Graph().as_default():
    r = tf.random_normal([2048, 2048], seed=1)
    counter = tf.Variable(0, name="counter")
    y = r
    for _ in range(60):  # a minute or more of matmuls: only a cancellation ends it early
        y = tf.tanh(tf.matmul(y, r))
    with tf.control_dependencies([y]):
        update = counter.assign_add(1)
    with tf.Session(sys.argv[1], config=tf.ConfigProto(container="cancel")) as sess:
        sess.run(counter.initializer)
        print("running", flush=True)
        sess.run(update)
"""


def _worker_load(client) -> int:
    records = [client.get(key) for key in client.keys(f"{PREFIX}worker:*")]
    return sum(json.loads(r)["load"] for r in records if r)


def test_a_client_that_goes_away_cancels_its_run_on_the_worker(redis_server, serve, worker, wait_for_workers):
    worker(redis_server.url)
    target = serve("--redis", redis_server.url)
    wait_for_workers(target, 1)
    client = redis.Redis.from_url(redis_server.url)
    runner = subprocess.Popen([sys.executable, "-c", _CLIENT, target], stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout.readline().strip() == "running"
        deadline = time.monotonic() + 60
        while _worker_load(client) < 1:  # the worker's heartbeat reports it busy
            assert time.monotonic() < deadline, "the run never reached the worker"
            time.sleep(0.1)
    finally:
        runner.kill()  # its connection drops: the server's call is cancelled, and with it the worker's
        runner.wait()
    deadline = time.monotonic() + 20  # generous; the run itself would take far longer
    while _worker_load(client) > 0:
        assert time.monotonic() < deadline, "the worker kept running a cancelled run"
        time.sleep(0.1)
    with tf.Graph().as_default():
        counter = tf.Variable(0, name="counter")
        with tf.Session(target, config=tf.ConfigProto(container="cancel")) as sess:
            assert sess.run(counter) == 0  # the cancelled run applied nothing


def _counter_plan():
    """The CachedPlan of `counter.assign_add(1)` (fetched), and counter's initial value."""
    with tf.Graph().as_default() as graph:
        counter = tf.Variable(0, name="counter")
        bump = counter.assign_add(1)
    prepared, _, _ = InProcessRunner().prepare(graph, [], [bump.name], [])
    return prepared.cached


def test_two_workers_with_hot_copies_of_one_container_take_turns_without_losing_a_step(redis_server):
    """Each worker's copy goes stale whenever the other commits: its commit aborts, it drops the copy,
    and the run goes again under the container's lock; no step is lost, none applied twice."""
    cached = _counter_plan()
    stores = [RedisStore(redis_server.url) for _ in range(2)]
    cores = [WorkerCore(store, feeds_owned=False) for store in stores]
    try:
        stores[0].commit("c", 0, {"counter": np.array(0, np.int32)}, 0, b"")
        seen, aborted = [], []

        def dispatch(core):
            def run(call, plan):
                try:
                    return core.run(call, plan)
                except AbortedError:
                    aborted.append(call.request_id)
                    raise
            return run

        for step in range(1, 13):
            index = (step // 2) % 2  # two steps on one worker (the second on its hot copy), then the other
            call = PlanCall("c", cached.key, [], request_id=step)
            result = run_serialized(stores[index], call, cached, dispatch(cores[index]), optimistic=True)
            assert not result.deduplicated
            seen.append(int(result.fetches[0]))
        assert seen == list(range(1, 13))
        assert aborted == [4, 6, 8, 10, 12]  # the first step after a switch ran on a stale copy, then again
        replay = run_serialized(stores[1], PlanCall("c", cached.key, [], request_id=5), cached, cores[1].run,
                                optimistic=True)
        assert replay.deduplicated and int(replay.fetches[0]) == 5  # the stored result, not a 13th step
        assert int(stores[0].read_variables("c")[1]["counter"]) == 12
    finally:
        for store in stores:
            store.close()


def test_a_commit_larger_than_the_sockets_buffers_arrives_whole(redis_server):
    """The commit's buffers go out in one sendmsg (server.resp.send); one of 48 MB cannot leave in one
    call (the socket's buffers are far smaller, and redis-py's timeout makes the socket non-blocking), so
    the rest is sent from where the last call stopped: Redis holds every byte, in order."""
    store, client = RedisStore(redis_server.url), redis.Redis.from_url(redis_server.url)
    try:
        big = np.random.default_rng(5).standard_normal(12 << 20).astype(np.float32)
        small = np.arange(5, dtype=np.float64)
        assert store.commit("c", 0, {"big": big, "small": small}, 9, b"nine") == 1
        _, values = store.read_variables("c")
        np.testing.assert_array_equal(values["big"], big)
        np.testing.assert_array_equal(values["small"], small)
        assert store.commit("c", 1, {"big": big[::-1].copy()}, 10, b"ten") == 2
        np.testing.assert_array_equal(store.read_variables("c")[1]["big"], big[::-1])
    finally:
        store.close()
        client.close()


def test_a_commit_of_more_large_values_than_one_write_takes_arrives_whole(redis_server):
    """600 values of 64 KB are 1,201 buffers, more than one sendmsg takes (IOV_MAX, 1024 on Linux): they
    go out in several writes, and Redis holds every value."""
    store = RedisStore(redis_server.url)
    try:
        values = {f"v{i}": np.full(16384, i, np.float32) for i in range(600)}
        assert store.commit("c", 0, values, 11, b"eleven") == 1
        _, stored = store.read_variables("c")
        assert sorted(stored) == sorted(values)
        for name, value in values.items():
            np.testing.assert_array_equal(stored[name], value)
    finally:
        store.close()
