"""Dynamic batching on the API's direct link (graphexec.server.direct_batching), against real `graphexec
serve` processes: one thread reads every connection and answers batches; a client that hangs up while its
run waits loses only that run; frames sent out of turn wait their turn; calls that cannot join a batch are
answered as on a connection of their own. (tests/integration/test_batching.py and test_direct_api.py run
their programs against this path too.)"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from test_batching import batches, client_rows, concurrently, mlp_graph, mlp_numpy, start_serve
from test_direct_api import _raw_connection
from test_metrics import Scrape, moved

import graphexec as tf
from graphexec.proto.v1 import service_pb2 as spb
from graphexec import errors
from graphexec.rpc import codec, frames, status
from graphexec.rpc.frames import API_PREFIX
from graphexec.server.direct_api import SERVICE

pytestmark = pytest.mark.timeout(240)


def _request(sess, x, probabilities, rows) -> bytes:
    """A RunCallable frame body for `rows`, made by hand (the session's own callable)."""
    return _request_for(sess, x, probabilities, rows, sess._callable((x.name,), (probabilities.name,), ()).handle)


def _request_for(sess, x, probabilities, rows, handle: str = "") -> bytes:
    handle = handle or next(iter(made.handle for made in sess._callables.values() if made.feed_indices))
    request = spb.RunCallableRequest(session_handle=sess._handle, callable_handle=handle)
    return API_PREFIX.pack(-1.0, 1) + codec.encode_tensor_message(request, "feeds", [rows])


def _answer(reader) -> np.ndarray:
    kind, body = frames.read_frame(reader)
    assert kind == frames.RESULT, body
    _, fetches, _ = codec.decode_tensor_message(spb.RunCallableResponse, body, "fetches")
    return fetches[0]


def test_one_thread_answers_every_connection_in_shared_kernel_calls(processes):
    target, url = start_serve(processes, "--max-batch-size", "64", "--max-batch-delay-us", "5000")
    graph, x, probabilities, init = mlp_graph()
    with tf.Session(target, graph=graph) as sess:
        sess.run(init)
    clients, runs = 32, 10
    over_the_link = []

    def work(index):
        with tf.Session(target, graph=graph) as sess:
            for run in range(runs):
                rows = client_rows(index, run)
                np.testing.assert_allclose(sess.run(probabilities, {x: rows}), mlp_numpy(rows), rtol=2e-5, atol=1e-6)
            over_the_link.append(sess._connection.direct.calls)

    before = Scrape(url)
    concurrently(clients, work)
    after = Scrape(url)
    calls, batched = batches(before, after)
    assert batched == clients * runs and calls < batched / 4, (calls, batched)
    assert min(over_the_link) >= runs  # each session's runs (and its MakeCallable) took the link
    assert moved(before, after, "graphexec_runs_total", code="OK") == clients * runs
    assert moved(before, after, "graphexec_grpc_calls_total", method=f"{SERVICE}/RunCallable",
                 code="OK") == clients * runs  # each run a call, as on a connection of its own
    # a batch's runs are timed and counted together: every run once, in the histograms too
    method = {"method": f"{SERVICE}/RunCallable", "code": "OK"}
    for name, labels in (("graphexec_grpc_call_duration_seconds", method), ("graphexec_run_duration_seconds", {})):
        assert moved(before, after, f"{name}_count", **labels) == clients * runs
        assert moved(before, after, f"{name}_bucket", le="+Inf", **labels) == clients * runs
        assert 0 < moved(before, after, f"{name}_sum", **labels) < clients * runs * 5.0
    assert moved(before, after, "graphexec_grpc_sent_bytes_total", method=method["method"]) >= clients * runs * 40
    assert after.value("graphexec_grpc_calls_in_flight") == 0


def test_a_client_that_hangs_up_while_its_run_waits_loses_only_that_run(processes):
    target, url = start_serve(processes, "--max-batch-size", "64", "--max-batch-delay-us", "1500000")
    graph, x, probabilities, init = mlp_graph()
    with tf.Session(target, graph=graph) as sess:
        sess.run(init)
    rows = client_rows(1, 1)
    with tf.Session(target, graph=graph) as first, tf.Session(target, graph=graph) as second:
        first.run(probabilities, {x: rows})
        second.run(probabilities, {x: rows})  # two sessions: a batch now waits for company
        before = _settled(url)
        sock, reader, hello = _raw_connection(first._connection.direct.port)
        assert hello == (frames.RESULT, b"")
        frames.send_frame(sock, frames.RUN, _request(first, x, probabilities, rows))
        time.sleep(0.3)  # it waits for its batch (1.5 s)
        answered = {}
        waiting = threading.Thread(target=lambda: answered.update(value=second.run(probabilities, {x: rows})))
        waiting.start()
        time.sleep(0.2)
        reader.close()
        sock.close()
        waiting.join(timeout=30)
        np.testing.assert_allclose(answered["value"], mlp_numpy(rows), rtol=2e-5, atol=1e-6)
        give_up = time.monotonic() + 10
        while True:
            after = Scrape(url)
            counts = (moved(before, after, "graphexec_runs_total", code="CANCELLED"),
                      moved(before, after, "graphexec_runs_total", code="OK"))
            if counts == (1, 1) or time.monotonic() > give_up:
                break
            time.sleep(0.1)
        assert counts == (1, 1)
        assert moved(before, after, "graphexec_batch_size_sum") == 1  # the batch held the second run only
        np.testing.assert_allclose(first.run(probabilities, {x: rows}), mlp_numpy(rows), rtol=2e-5, atol=1e-6)


def _settled(url: str) -> Scrape:
    """A scrape once the runs answered so far are all counted: a server counts a run just after it sends
    the answer, so a scrape taken at once may miss the last one (and count it in the next window)."""
    scrape = Scrape(url)
    for _ in range(50):
        time.sleep(0.1)
        again = Scrape(url)
        if moved(scrape, again, "graphexec_runs_total", code="OK") == 0:
            return again
        scrape = again
    return scrape


def _failure(reader):
    kind, body = frames.read_frame(reader)
    assert kind == frames.FAILURE, body
    return status.error_from_failure_bytes(body)


def test_runs_that_repeat_a_connections_request_are_still_checked_each_time(processes):
    """A connection's runs repeat one request layout, so the batching thread reads them from a template
    and keeps what it derived from the last one (checks, placement, batch key); the session and the
    callable are still looked up each run, and a request that differs is checked in full."""
    target, _ = start_serve(processes, "--max-batch-size", "16", "--max-batch-delay-us", "2000")
    graph, x, probabilities, init = mlp_graph()
    sess = tf.Session(target, graph=graph)
    sess.run(init)
    sock, reader, _ = _raw_connection(sess._connection.direct.port)
    with sock:
        def ask(body):
            frames.send_frame(sock, frames.RUN, body)

        def rows(run):  # the same layout each run, other values
            return client_rows(3, 3 * run)

        for run in range(4):
            ask(_request(sess, x, probabilities, rows(run)))
            np.testing.assert_allclose(_answer(reader), mlp_numpy(rows(run)), rtol=2e-5, atol=1e-6)
        ask(_request(sess, x, probabilities, np.ones((2, 7), np.float32)))  # another shape: checked
        assert isinstance(_failure(reader), errors.InvalidArgumentError)
        for run in range(4, 6):
            ask(_request(sess, x, probabilities, rows(run)))
            np.testing.assert_allclose(_answer(reader), mlp_numpy(rows(run)), rtol=2e-5, atol=1e-6)
        sess.close()  # the session ends: the same request, byte for byte but its values, is refused
        ask(_request_for(sess, x, probabilities, rows(6)))
        refused = _failure(reader)
        assert isinstance(refused, errors.NotFoundError) and "session" in refused.message, refused.message


def test_frames_sent_out_of_turn_are_answered_in_order(processes):
    target, _ = start_serve(processes, "--max-batch-size", "16", "--max-batch-delay-us", "2000")
    graph, x, probabilities, init = mlp_graph()
    with tf.Session(target, graph=graph) as sess:
        sess.run(init)
        many = [client_rows(7, run) for run in range(5)]
        sock, reader, _ = _raw_connection(sess._connection.direct.port)
        with sock:
            sock.sendall(b"".join(frames.HEAD.pack(frames.RUN, len(body)) + body
                                  for body in (_request(sess, x, probabilities, rows) for rows in many)))
            for rows in many:
                np.testing.assert_allclose(_answer(reader), mlp_numpy(rows), rtol=2e-5, atol=1e-6)
            frames.send_frame(sock, 0x7F, b"")  # not a frame of the link: the connection ends
            with pytest.raises(frames.Closed):
                frames.read_frame(reader)
        np.testing.assert_allclose(sess.run(probabilities, {x: many[0]}), mlp_numpy(many[0]), rtol=2e-5, atol=1e-6)


def test_calls_that_cannot_join_a_batch_are_answered_beside_it(processes):
    """A traced run, a RunStep and a plan that writes variables go to a thread of their own while the
    batches of other connections go on."""
    target, _ = start_serve(processes, "--max-batch-size", "16", "--max-batch-delay-us", "2000")
    graph, x, probabilities, init = mlp_graph()
    with graph.as_default():
        counter = tf.Variable(0.0)
        bump = tf.assign_add(counter, 1.0)
    with tf.Session(target, graph=graph) as sess:
        sess.run([init, counter.initializer])

    def work(index):
        with tf.Session(target, graph=graph) as sess:
            for run in range(6):
                rows = client_rows(index, run)
                if index % 4 == 0:
                    metadata = tf.RunMetadata()
                    got = sess.run(probabilities, {x: rows},
                                   options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                                   run_metadata=metadata)
                    assert metadata.step_stats.node_stats and metadata.executed_nodes
                elif index % 4 == 1:
                    sess.run(bump)
                    got = sess.run(probabilities, {x: rows})
                else:
                    got = sess.run(probabilities, {x: rows})
                np.testing.assert_allclose(got, mlp_numpy(rows), rtol=2e-5, atol=1e-6)

    concurrently(12, work)
    with tf.Session(target, graph=graph) as sess:
        assert sess.run(counter) == 3 * 6  # every update applied once


def test_a_slow_models_batches_hold_up_neither_other_models_nor_reading(processes):
    """Once a key's batch took long, its batches run on a thread of the pool: a fast model's runs are
    answered while a slow model's batch runs (inline, they would wait for it)."""
    target, _ = start_serve(processes, "--max-batch-size", "64", "--max-batch-delay-us", "1000")
    slow_graph = tf.Graph()
    with slow_graph.as_default():
        rows_in = tf.placeholder(tf.float32, [None, 8])
        weights = tf.constant(np.full((8, 1500), 1e-4, np.float32))
        square = tf.constant(np.eye(1500, dtype=np.float32))
        slow = rows_in @ weights
        # 300 products of [48, 1500] x [1500, 1500]: 0.2 s on 2 Zen 5 threads (100 took 68 ms there, under
        # the premise below), up to ~1 s on slower machines
        for _ in range(300):
            slow = tf.tanh(slow @ square)
        slow = tf.reduce_sum(slow, axis=1)
    fast_graph, x, probabilities, init = mlp_graph()
    with tf.Session(target, graph=fast_graph) as sess:
        sess.run(init)
    slow_rows = np.ones((48, 8), np.float32)
    with tf.Session(target, graph=slow_graph) as slow_sess, tf.Session(target, graph=fast_graph) as fast_sess:
        slow_sess.run(slow, {rows_in: slow_rows})  # compiled, and run inline: now known to be slow
        started = time.monotonic()
        expected = slow_sess.run(slow, {rows_in: slow_rows})
        took = time.monotonic() - started
        finished = {}
        background = threading.Thread(target=lambda: finished.update(
            value=slow_sess.run(slow, {rows_in: slow_rows}), at=time.monotonic()))
        background.start()
        time.sleep(min(0.1, took / 4))  # its batch is running now
        fast_times = []
        for run in range(5):
            rows = client_rows(3, run)
            t0 = time.monotonic()
            np.testing.assert_allclose(fast_sess.run(probabilities, {x: rows}), mlp_numpy(rows), rtol=2e-5, atol=1e-6)
            fast_times.append(time.monotonic() - t0)
        fast_done = time.monotonic()
        background.join(timeout=60)
    np.testing.assert_array_equal(finished["value"], expected)
    print(f"\nslow batch {took * 1e3:.0f} ms; fast runs meanwhile {[round(t * 1e3, 1) for t in fast_times]} ms")
    assert took > 0.1, took  # (the premise: a batch slow enough to see)
    assert fast_done < finished["at"], (fast_times, took)  # every fast run answered while the slow batch ran
