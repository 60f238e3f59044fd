"""Long kernels stop soon after a run's deadline or its client's cancellation (README "Security: Limits"):
a 6000x6000 matrix product, a convolution and a While loop that would each run for many seconds answer
DEADLINE_EXCEEDED / CANCELLED shortly after the deadline, and the server's one run thread is free for
the next run. The issue's goal is within 200 ms; the assertions allow CI's load (SLACK_S), and each
test prints what it measured (pytest -s)."""
from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
from conftest import Process, start_serve  # tests/integration is on sys.path (rootdir-relative conftest)

import graphexec as tf
from graphexec import errors
from graphexec.client.connection import parse_target
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import codec, methods

pytestmark = pytest.mark.timeout(240)
SLACK_S = 1.5  # the goal is 0.2 s past the deadline; a loaded CI machine gets more


@pytest.fixture(scope="module")
def one_thread():
    """A `graphexec serve` that runs one run at a time: the next run starts only once a stopped one ended."""
    started: list[Process] = []
    try:
        yield start_serve(started, "--threads", "1", "--queue-depth", "8")
    finally:
        for process in started:
            process.kill()


# Each build returns (the fed scalar, a run of many seconds, and a run as long as the longest piece of it
# that cannot stop midway, or None when those are short).
def _big_product():
    s = tf.placeholder(tf.float32, [])
    a = tf.fill([6000, 6000], s)  # made in the run (a fed scalar), so not folded at compile time
    return s, tf.reduce_sum(tf.matmul(a, a * 0.5)), None


def _big_convolution():
    s = tf.placeholder(tf.float32, [])
    filters = tf.fill([5, 5, 256, 256], s)

    def convolved(images):  # 20.6 G multiply-adds an image: 329 G for the batch, seconds even with AVX-512
        return tf.reduce_sum(tf.nn.conv2d(tf.fill([images, 112, 112, 256], s), filters, [1, 1, 1, 1], "SAME"))

    # A run stops between two parts of a kernel, and a convolution's smallest part is one image: one
    # library call. (With 3x3 filters, 118 G for the batch, an Intel family 6 model 207 with AVX-512
    # sometimes finished the whole run inside the 1 s deadline.)
    return s, convolved(16), convolved(1)


def _endless_loop():
    s = tf.placeholder(tf.float32, [])
    _, value = tf.while_loop(lambda i, v: i < 1_000_000_000, lambda i, v: (i + 1, v * 0.5 + 1.0),
                             [tf.constant(0), tf.fill([64], s)])
    return s, tf.reduce_sum(value), None


@pytest.mark.parametrize("build", [_big_product, _big_convolution, _endless_loop])
def test_a_long_kernel_stops_soon_after_a_1s_deadline(one_thread, build):
    with tf.Graph().as_default():
        s, total, piece = build()
        quick = s * 2.0
        with tf.Session(one_thread) as sess:
            assert sess.run(quick, {s: 1.0}) == 2.0  # compiled and warm before anything is timed
            piece_s = 0.0
            if piece is not None:  # what the run may still finish after its deadline, on this machine
                # The first also imports torch (1-2 s that no deadline stops: conv_library imports it at
                # a process's first float32 convolution, not at startup) and builds oneDNN's kernels.
                sess.run(piece, {s: 1.0})
                started = time.monotonic()
                sess.run(piece, {s: 1.0})
                piece_s = time.monotonic() - started
            started = time.monotonic()
            with pytest.raises(errors.DeadlineExceededError):
                sess.run(total, {s: 1.0}, options=tf.RunOptions(timeout_in_ms=1000))
            answered = time.monotonic() - started
            assert sess.run(quick, {s: 3.0}) == 6.0
            free = time.monotonic() - started
    print(f"\n{build.__name__}: DEADLINE_EXCEEDED {(answered - 1) * 1e3:.0f} ms after the 1 s deadline; "
          f"the run thread free {(free - 1) * 1e3:.0f} ms after it; its longest piece {piece_s * 1e3:.0f} ms")
    assert answered < 1.0 + SLACK_S + piece_s and free < 1.0 + SLACK_S + piece_s


def test_a_cancelled_run_frees_the_server_soon(one_thread):
    """The client cancels the call: the server stops the product at its next block, and its one run
    thread runs the next run (which waited for it)."""
    with tf.Graph().as_default():
        s, total, _ = _big_product()
        quick = s * 2.0
        with tf.Session(one_thread) as sess:
            assert sess.run(quick, {s: 1.0}) == 2.0
            made = sess._callable((s.name,), (total.name,), ())
            request = spb.RunCallableRequest(session_handle=sess._handle, callable_handle=made.handle)
            data = codec.encode_tensor_message(request, "feeds", [np.float32(1.0)])
            with grpc.insecure_channel(parse_target(one_thread)[0]) as channel:
                call = methods.client_calls(channel, methods.GRAPH_EXEC_SERVICE)["RunCallable"].future(data)
                time.sleep(1.0)  # well into the product
                assert not call.done()
                next_run = {}
                waiting = threading.Thread(target=lambda: next_run.update(value=sess.run(quick, {s: 3.0}),
                                                                          at=time.monotonic()))
                waiting.start()
                time.sleep(0.2)
                assert "value" not in next_run  # it waits for the one run thread
                cancelled_at = time.monotonic()
                call.cancel()
                waiting.join(timeout=60)
            assert call.cancelled() and next_run["value"] == 6.0
    freed = next_run["at"] - cancelled_at
    print(f"\ncancelled product: the next run answered {freed * 1e3:.0f} ms after the cancel")
    assert freed < SLACK_S
