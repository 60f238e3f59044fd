"""The worker's direct link (graphexec/server/direct.py) on a real `graphexec worker`: announced in its
signed registration, served only to callers with the worker secret, every failure answered in a frame
with the connection still serving; servers run plans over it, and over gRPC RunPlan with a worker
started with `--direct-port -1`, with the same results."""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import redis
from security_setup import WORKER_SECRET, write_secret

import graphexec as tf
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.proto.v1 import worker_pb2 as wpb
from graphexec.rpc import codec, convert, link_format
from graphexec.runtime.worker import PlanCall
from graphexec.server import direct, pool
from graphexec.server.auth import WorkerSecret
from graphexec.server.redis_store import PREFIX

pytestmark = pytest.mark.timeout(180)


def _registration(redis_url: str, worker_id: str, secret: str | None = None) -> dict:
    record = json.loads(redis.Redis.from_url(redis_url).get(f"{PREFIX}worker:{worker_id}"))
    return WorkerSecret(secret).verify(record) if secret else record


def _connect(port: int, secret: str) -> tuple[socket.socket, object]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    direct.send_frame(sock, direct.HELLO, b"t" * direct.TOKEN_BYTES, secret.encode())
    return sock, sock.makefile("rb")


def _run(sock, reader, request: bytes) -> tuple[int, bytes]:
    direct.send_frame(sock, direct.RUN, direct._DEADLINE.pack(10.0), request)
    return direct.read_frame(reader)


def test_the_direct_link_serves_only_callers_with_the_worker_secret(redis_server, worker, tmp_path):
    secret_file = write_secret(tmp_path, "worker-secret", WORKER_SECRET)
    process = worker(redis_server.url, "--worker-secret-file", str(secret_file))
    info = _registration(redis_server.url, process.match.group(1), WORKER_SECRET)
    assert info is not None and isinstance(info["direct_port"], int)  # signed with the rest of the record

    sock, reader = _connect(info["direct_port"], "not-the-secret")
    with sock:
        kind, body = _run(sock, reader, b"")
        assert kind == direct.FAILURE
        assert spb.Status.FromString(body).code == 16  # UNAUTHENTICATED
        # and the worker hung up: a clean end, or a reset when it closed with our RUN frame unread (the
        # FAILURE frame, queued before the reset, is read either way)
        with pytest.raises((direct.Closed, ConnectionResetError)):
            direct.read_frame(reader)

    sock, reader = _connect(info["direct_port"], WORKER_SECRET)
    with sock:
        for _ in range(2):  # a malformed request is answered, and the connection keeps serving
            kind, body = _run(sock, reader, b"\xff\xff\xff")
            assert kind == direct.FAILURE
            assert spb.Status.FromString(body).code == 3  # INVALID_ARGUMENT

    with socket.create_connection(("127.0.0.1", info["direct_port"]), timeout=30) as sock:
        sock.sendall(direct._HEAD.pack(direct.HELLO, direct.MAX_HELLO_BYTES + 1))  # before authentication:
        assert sock.makefile("rb").read(1) == b""  # nothing that large is read, the connection is closed


@pytest.mark.parametrize("link", ["direct", "grpc"])
def test_training_steps_agree_over_either_link(link, redis_server, serve, worker, wait_for_workers):
    process = worker(redis_server.url, *(("--direct-port", "-1") if link == "grpc" else ()))
    assert ("direct_port" in _registration(redis_server.url, process.match.group(1))) == (link == "direct")
    target = serve("--redis", redis_server.url)
    wait_for_workers(target, 1)
    rng = np.random.default_rng(0)
    x_value, w_value = rng.standard_normal((64, 8)).astype(np.float32), rng.standard_normal((8, 1)).astype(np.float32)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 8])
        w = tf.Variable(w_value)
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w)))
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        with tf.Session(target, config=tf.ConfigProto(container=f"link-{link}")) as sess:
            sess.run(w.initializer)
            for _ in range(5):
                sess.run(train, {x: x_value})
                expected_w = w_value - 0.1 * (2 / 64) * x_value.T @ (x_value @ w_value)
                w_value = expected_w
            np.testing.assert_allclose(sess.run(w), w_value, rtol=1e-4, atol=1e-5)


def _in_place(array, data) -> bool:
    return np.shares_memory(array, np.frombuffer(data, np.uint8)) and array.ctypes.data % 8 == 0


def test_tensor_contents_arrive_8_byte_aligned_on_both_sides_of_the_link():
    """The frames put no head between the buffer's start and the message that would shift its contents
    (the RUN frame's 8-byte deadline keeps them on the boundary), so both sides view them in place."""
    feeds = [np.arange(n, dtype=np.float32) for n in (100_000, 10, 5000)]
    seen = []

    def answer(data, timeout_s, cancellation):
        _, arrays, _ = codec.decode_tensor_message(wpb.RunPlanRequest, data, "feeds")
        seen.extend(_in_place(a, data.obj) for a in arrays if a.nbytes >= codec.ALIGN_FROM_BYTES)
        return codec.encode_tensor_message(wpb.RunPlanResponse(worker="w"), "fetches", [a * 2 for a in arrays])

    server = direct.DirectServer(answer, "127.0.0.1").start()
    try:
        for handle_length in range(8):  # every remainder of the request's header length
            lane = direct.DirectLane(direct.Link("127.0.0.1", server.port, None, b""))
            request = convert.run_plan_request(feeds, container="c" * handle_length, request_id=1)
            kind, body = lane.call(request, 30.0)
            lane.close()
            assert kind == direct.RESULT
            fetches = convert.run_plan_reply(body)[0]
            for feed, fetch in zip(feeds, fetches):
                np.testing.assert_array_equal(fetch, feed * 2)
                assert _in_place(fetch, body) or fetch.nbytes < codec.ALIGN_FROM_BYTES
    finally:
        server.stop()
    assert seen == [True] * 16


def test_plan_frames_are_announced_answered_when_malformed_and_either_frame_kind_reaches_the_worker(redis_server,
                                                                                                     worker):
    """A worker announces `direct_version` 2: servers send it PLAN frames, and RUN frames to workers without
    it (older ones); a worker reads both, and answers a malformed PLAN with FAILURE, still serving."""
    info = _registration(redis_server.url, worker(redis_server.url).match.group(1))
    assert info["direct_version"] == link_format.VERSION

    sock, reader = _connect(info["direct_port"], "")
    with sock:
        for _ in range(2):
            direct.send_frame(sock, direct.PLAN, b"\x01" * 40)
            kind, body = direct.read_frame(reader)
            assert kind == direct.FAILURE
            status = spb.Status.FromString(body)
            assert status.code == 3 and "runs past the end" in status.message  # INVALID_ARGUMENT
        plan = link_format.plan_pieces(10.0, "c", "no-such-plan", "s", "CPU", (), 1, False, [np.ones(3, np.float32)])
        direct.send_frame(sock, direct.PLAN, *plan)  # decoded, then looked up
        kind, body = direct.read_frame(reader)
        assert kind == direct.FAILURE and spb.Status.FromString(body).code == 5  # NOT_FOUND

    old = dict(info)
    del old["direct_version"]  # as a worker before PLAN frames registers
    for registration in (info, old):
        remote = pool.RemoteWorker(registration)
        try:
            with pytest.raises(tf.errors.NotFoundError, match="not in the plan cache"):
                remote.run(PlanCall("c", "no-such-plan", [np.ones(3, np.float32)], 1, "s"), None)
        finally:
            remote.close()
