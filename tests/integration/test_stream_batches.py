"""A Run stream's batches on the Redis deployment (real Redis, workers and replica): the runs of a batch go
to a worker as PLAN frames pipelined on one direct connection (graphexec.server.direct.DirectLane.call_plans);
each run keeps its own answer, its own failure, and its own fate when the worker dies under it."""
from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest
from test_limits_cluster import _busiest, _long_chain, _numpy_chain
from test_worker_direct_link import _registration

import graphexec as tf
from graphexec import errors
from graphexec.client import remote
from graphexec.client.connection import ResponseAssembler
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import codec, link_format
from graphexec.server import direct, pool

pytestmark = pytest.mark.timeout(240)


def _batch_answers(sess, fetch, placeholder, values) -> list:
    """The answers of one batch RunRequest carrying a run for each value (as a stream's sender batches
    them): each run's fetched value, or the tf.errors exception it failed with, in order."""
    sess.run(fetch, {placeholder: values[0]})  # makes the callable
    made = sess._callable([placeholder.name], [fetch.name], [])
    header = sess._header(made, remote._DEFAULT_OPTIONS, False)
    items = [remote._encode_run(header, index + 1, [value]) for index, value in enumerate(values)]
    frame = b"".join(codec.message_field(spb.RunRequest, "batch", item) for item in items)
    assembler, answers = ResponseAssembler(), []
    for data in sess._connection.stream(iter([frame])):
        answers += assembler.answers(data)
    assert len(answers) == len(values)
    return [a if isinstance(a, errors.OpError) else a[1][0] for a in answers]


def test_a_batch_runs_in_order_on_the_worker_with_each_failure_in_its_place(redis_server, serve, worker,
                                                                           wait_for_workers):
    worker(redis_server.url)
    target = serve("--redis", redis_server.url)
    wait_for_workers(target, 1)
    values = [np.full(4, i + 1.0, np.float32) for i in range(300)]
    values[120] = np.array([1.0, -1.0, 2.0, 3.0], np.float32)  # log(-1): check_numerics fails on the worker
    values[121] = np.ones(5, np.float32)  # the wrong shape: refused by the replica before it is sent
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [4])
        y = tf.debugging.check_numerics(tf.log(x), "log of x") * 2.0
        with tf.Session(target) as sess:
            answers = _batch_answers(sess, y, x, values)
            for index, (value, answer) in enumerate(zip(values, answers)):
                if index == 120:
                    assert isinstance(answer, errors.InvalidArgumentError) and "log of x" in answer.message
                elif index == 121:
                    assert isinstance(answer, errors.InvalidArgumentError) and "shape" in answer.message
                else:
                    np.testing.assert_allclose(answer, np.log(value) * 2.0, rtol=1e-6)
            # The stream API gives the same values, and the connection is in step after the failures.
            streamed = list(sess.stream(y, ({x: v} for v in values[:100])))
            np.testing.assert_allclose(np.stack(streamed), np.log(np.stack(values[:100])) * 2.0, rtol=1e-6)


def test_runs_after_the_one_that_killed_the_worker_go_to_another_and_it_is_refused(redis_server, serve, worker,
                                                                                 wait_for_workers):
    """The worker reads a connection's runs in order: the run it died running is ABORTED and not resent
    (it may be what killed it), and the runs queued behind it, which it never read, go to another worker,
    except a copy of that run, refused like it (else a batch of copies could kill every worker)."""
    workers = [worker(redis_server.url) for _ in range(2)]
    target = serve("--redis", redis_server.url)
    wait_for_workers(target, 2)
    small = [np.eye(3, dtype=np.float32) * (1.2 + 0.1 * i) for i in range(8)]  # tanh(s y) = y: distinct sums
    large = np.random.default_rng(2).normal(size=(800, 800)).astype(np.float32) * 0.03
    values = small[:3] + [large, large] + small[3:]
    with tf.Graph().as_default():
        x, total = _long_chain()
        with tf.Session(target) as sess:
            sess.run(total, {x: small[0]})
            result = {}
            runner = threading.Thread(target=lambda: result.update(answers=_batch_answers(sess, total, x, values)))
            runner.start()
            victim = _busiest(workers)
            victim.signal(signal.SIGKILL)
            runner.join(timeout=120)
            answers = result["answers"]
            assert isinstance(answers[3], errors.AbortedError) and "died while running this run" in answers[3].message
            assert isinstance(answers[4], errors.ResourceExhaustedError) and "refused" in answers[4].message
            for index in (0, 1, 2, 5, 6, 7, 8, 9):
                np.testing.assert_allclose(answers[index], _numpy_chain(values[index].astype(np.float64), 400).sum(),
                                           rtol=1e-4)
            survivor = next(w for w in workers if w is not victim)
            time.sleep(0.2)
            assert survivor.proc.poll() is None
            with pytest.raises(errors.ResourceExhaustedError, match="killed the worker running it; it is refused"):
                sess.run(total, {x: large})


def test_pipelined_plan_frames_are_answered_in_order_past_the_window(redis_server, serve, worker, wait_for_workers):
    """3,000 runs (~500 KB of frames, many times PIPELINE_BYTES) on one connection: every answer is its
    own run's, in order; a malformed frame among them is answered FAILURE and the rest still run."""
    process = worker(redis_server.url)
    target = serve("--redis", redis_server.url)
    wait_for_workers(target, 1)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [8])
        y = x * 3.0 + 1.0
        with tf.Session(target) as sess:
            sess.run(y, {x: np.zeros(8, np.float32)})  # the plan is now in Redis, where the worker finds it
            made = sess._callable([x.name], [y.name], [])
            handle = sess._handle
    values = [np.arange(8, dtype=np.float32) + i for i in range(3000)]
    plans = [link_format.plan_pieces(30.0, "", made.handle, handle, "CPU", (), 0, False, [v]) for v in values]
    plans[1500] = [b"\x01" * 40]
    lane = direct.DirectLane(pool.RemoteWorker(_registration(redis_server.url, process.match.group(1)))._link)
    try:
        answers, stopped, sent = lane.call_plans(plans, 30.0)
        assert stopped is None and sent == len(answers) == len(values)
        # With a budget for the answers, sending stops once the answers read reach it.
        budget = 40 * len(answers[0][1])
        few, stopped, sent = lane.call_plans(plans[:500], 30.0, answer_bytes=budget)
        assert stopped is None and sent == len(few) and 40 <= len(few) < 500
        assert [body for _, body in few] == [body for _, body in answers[:len(few)]]
    finally:
        lane.close()
    for index, (kind, body) in enumerate(answers):
        if index == 1500:
            assert kind == direct.FAILURE and spb.Status.FromString(body).code == 3  # INVALID_ARGUMENT
            continue
        assert kind == direct.ANSWER
        np.testing.assert_array_equal(link_format.read_answer(body)[0][0], values[index] * 3.0 + 1.0)


def test_streamed_training_steps_commit_one_by_one_and_seeded_randoms_keep_their_order(redis_server, serve, worker,
                                                                                      wait_for_workers):
    """A stream of updates goes run by run (each commits before the next reads); a stream of a seeded
    random op, pipelined, gives the values that the same runs give one after another."""
    worker(redis_server.url)
    target = serve("--redis", redis_server.url)
    wait_for_workers(target, 1)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((16, 4)).astype(np.float32) for _ in range(40)]
    w_start = rng.standard_normal((4, 1)).astype(np.float32)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 4])
        w = tf.Variable(w_start)
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w)))
        train = tf.train.GradientDescentOptimizer(0.05).minimize(loss)
        with tf.Session(target, config=tf.ConfigProto(container="streamed-steps")) as sess:
            sess.run(w.initializer)
            losses = [float(step[1]) for step in sess.stream([train, loss], ({x: v} for v in xs))]
            expected_w, expected_losses = w_start.astype(np.float64), []
            for value in xs:
                value = value.astype(np.float64)
                expected_losses.append(float(np.mean((value @ expected_w) ** 2)))  # fetched before the update
                expected_w = expected_w - 0.05 * (2 / 16) * value.T @ (value @ expected_w)
            np.testing.assert_allclose(sess.run(w), expected_w, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(losses, expected_losses, rtol=1e-4)

    def draws(stream: bool) -> np.ndarray:
        with tf.Graph().as_default():
            tf.set_random_seed(7)
            scale = tf.placeholder(tf.float32, [])
            noise = tf.random_uniform([3]) * scale
            with tf.Session(target) as sess:
                feeds = [{scale: 1.0 + i} for i in range(200)]
                if stream:
                    return np.stack(list(sess.stream(noise, feeds)))
                return np.stack([sess.run(noise, feed) for feed in feeds])

    streamed, one_by_one = draws(True), draws(False)
    assert len({tuple(row) for row in streamed}) == 200  # a new draw each run
    np.testing.assert_array_equal(streamed, one_by_one)


@pytest.mark.parametrize("deployment", ["embedded", "redis"])
def test_a_batch_of_runs_with_large_fetches_runs_a_few_at_a_time(deployment, redis_server, serve, worker,
                                                                 wait_for_workers):
    """Runs whose fetches reach Service.FETCH_BYTES_PER_CALL (64 MiB) are answered before the next runs of
    the batch are run, rather than all held at once; every answer is still its own run's, in order."""
    if deployment == "redis":
        worker(redis_server.url)
        target = serve("--redis", redis_server.url)
        wait_for_workers(target, 1)
    else:
        target = serve()
    with tf.Graph().as_default():
        scale = tf.placeholder(tf.float32, [])
        wide = tf.fill([6 << 20], 1.0) * scale  # 24 MiB fetched per run
        with tf.Session(target) as sess:
            answers = _batch_answers(sess, wide, scale, [np.float32(i) for i in range(7)])
    for index, answer in enumerate(answers):
        assert answer.shape == (6 << 20,) and answer[0] == answer[-1] == index
