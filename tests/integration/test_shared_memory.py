"""Same-host clients hand large requests over in shared memory (graphexec.rpc.shared_memory) on the
direct link's Unix socket, against real `graphexec serve` processes: the same answers, bit for bit, as
over TCP; regions a client could use against the server are refused with precise statuses."""
from __future__ import annotations

import fcntl
import logging
import mmap
import os
import socket
import tempfile

import numpy as np
import pytest
from conftest import Process, start_serve  # tests/integration is on sys.path

import graphexec as tf
from graphexec import errors
from graphexec.client import direct
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import codec, frames, shared_memory, status
from graphexec.rpc.frames import API_PREFIX

pytestmark = [pytest.mark.timeout(240),
              pytest.mark.skipif(not shared_memory.supported(), reason="needs Linux memfd seals and SCM_RIGHTS")]


@pytest.fixture(scope="module")
def server():
    started: list[Process] = []
    try:
        yield start_serve(started, "--max-message-bytes", "4MiB")
    finally:
        for process in started:
            process.kill()


def _doubled(target, values: list) -> tuple[list, direct.DirectLink]:
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 784])
        total = tf.reduce_sum(x, axis=1) * 2.0
        with tf.Session(target) as sess:
            return [sess.run(total, {x: v}) for v in values], sess._connection.direct


def test_large_requests_go_through_shared_memory_with_the_answers_of_tcp(server, monkeypatch):
    rng = np.random.default_rng(7)
    values = [rng.normal(size=(rows, 784)).astype(np.float32) for rows in (128, 1, 512, 128)]  # 401 KB, 3 KB, 1.6 MB
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    shared, link = _doubled(server, values)
    assert link.local_name.startswith("graphexec-direct-")
    assert (link.calls, link.shared_calls) == (4, 3)  # the 3 KB request costs less on the socket
    monkeypatch.setenv("GRAPHEXEC_SHARED_MEMORY", "0")
    over_tcp, link = _doubled(server, values)
    assert link.local_name == "" and (link.calls, link.shared_calls) == (4, 0)
    for got, want, value in zip(shared, over_tcp, values):
        assert got.tobytes() == want.tobytes()
        np.testing.assert_allclose(got, value.sum(axis=1) * 2.0, rtol=1e-5)


def test_an_unreachable_socket_leaves_runs_on_the_tcp_link(server, monkeypatch, caplog):
    """A client in another network namespace cannot reach the abstract socket: its runs take TCP, not gRPC."""
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    caplog.set_level(logging.INFO, "graphexec.client")
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 784])
        total = tf.reduce_sum(x)
        with tf.Session(server) as sess:
            link = sess._connection.direct
            link.close()  # the idle connection to the socket
            link.local_name = "graphexec-direct-nobody-listens-here"
            value = np.ones((128, 784), np.float32)
            assert sess.run(total, {x: value}) == 128 * 784
            assert sess.run(total, {x: value}) == 128 * 784
            assert link.local_name == "" and (link.calls, link.shared_calls) == (2, 0)
    assert "runs go over TCP" in caplog.text


def _voluntary_context_switches() -> int:
    with open("/proc/thread-self/status") as status_file:
        return next(int(line.split()[1]) for line in status_file if line.startswith("voluntary_ctxt_switches"))


def test_a_call_on_the_unix_socket_sleeps_only_until_its_answer(server, monkeypatch):
    """A call's thread waits for its answer in a poll: asleep in recv on a Unix socket, Linux also woke it
    (for nothing) when the server read its request, two context switches a call instead of one."""
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    calls = 300
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [3])
        doubled = x * 2.0
        with tf.Session(server) as sess:
            value = np.array([1.0, 2.0, 3.0], np.float32)
            for _ in range(20):
                sess.run(doubled, {x: value})
            link = sess._connection.direct
            before, calls_before = _voluntary_context_switches(), link.calls
            for _ in range(calls):
                np.testing.assert_array_equal(sess.run(doubled, {x: value}), [2.0, 4.0, 6.0])
            switches = _voluntary_context_switches() - before
    assert link.local_name.startswith("graphexec-direct-") and link.calls - calls_before == calls
    assert switches <= 1.3 * calls, f"{switches / calls:.2f} context switches a call"


def _hello(name: str, fds: list[int]):
    """A connection to the server's Unix socket made by hand, HELLO sent with `fds`: (socket, reader, answer)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(shared_memory.address(name))
    socket.send_fds(sock, [frames.HEAD.pack(frames.HELLO, 0)], fds)
    reader = sock.makefile("rb")
    return sock, reader, frames.read_frame(reader)


def _shared_run(sock, reader, length: int):
    frames.send_frame(sock, frames.SHARED_RUN, API_PREFIX.pack(-1.0, 1), shared_memory.LENGTH.pack(length))
    return frames.read_frame(reader)


def _memfd(size: int, seals: int) -> int:
    fd = os.memfd_create("test", os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


def test_regions_that_could_hurt_the_server_are_refused_and_it_stays_up(server, monkeypatch):
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 784])
        total = tf.reduce_sum(x)
        with tf.Session(server) as sess:
            name = sess._connection.direct.local_name
            made = sess._callable((x.name,), (total.name,), ())
            request = codec.encode_tensor_message(
                spb.RunCallableRequest(session_handle=sess._handle, callable_handle=made.handle), "feeds",
                [np.ones((128, 784), np.float32)])
            with tempfile.TemporaryFile() as plain_file:
                plain_file.truncate(1 << 20)
                refusals = {  # what a client hands over -> the refusal a run on it gets
                    "unsealed": ([_memfd(1 << 20, 0)], "not sealed against shrinking"),
                    "a file": ([os.dup(plain_file.fileno())], "not a memfd"),
                    "none": ([], "handed over none"),
                    "two": ([_memfd(1 << 20, fcntl.F_SEAL_SHRINK), _memfd(1 << 20, fcntl.F_SEAL_SHRINK)],
                            "expected one descriptor"),
                    "too large": ([_memfd(shared_memory.REGION_BYTES + 4096, fcntl.F_SEAL_SHRINK)], "bytes (1 to"),
                }
                for case, (fds, why) in refusals.items():
                    sock, reader, hello = _hello(name, fds)
                    for fd in fds:
                        os.close(fd)
                    with sock:
                        assert hello == (frames.RESULT, b""), case  # the link itself still serves
                        kind, body = _shared_run(sock, reader, len(request))
                        assert kind == frames.FAILURE, case
                        failure = status.error_from_failure_bytes(body)
                        assert isinstance(failure, errors.FailedPreconditionError) and why in failure.message, case

            fd = _memfd(1 << 20, fcntl.F_SEAL_SHRINK)
            with pytest.raises(PermissionError):  # what would make the server's next read a SIGBUS
                os.ftruncate(fd, 0)
            region = mmap.mmap(fd, 1 << 20)
            region[:len(request)] = request
            sock, reader, hello = _hello(name, [fd])
            os.close(fd)
            with sock:
                assert hello == (frames.RESULT, b"")
                kind, body = _shared_run(sock, reader, len(request))
                assert kind == frames.RESULT
                _, fetched, _ = codec.decode_tensor_message(spb.RunCallableResponse, body, "fetches")
                assert float(fetched[0]) == 128 * 784
                for length, error in (((1 << 20) + 1, errors.ResourceExhaustedError),
                                      ((4 << 20) + 1, errors.ResourceExhaustedError)):
                    kind, body = _shared_run(sock, reader, length)
                    assert kind == frames.FAILURE and isinstance(status.error_from_failure_bytes(body), error)
                frames.send_frame(sock, frames.SHARED_RUN, API_PREFIX.pack(-1.0, 1), b"\0" * 3)
                kind, body = frames.read_frame(reader)
                assert isinstance(status.error_from_failure_bytes(body), errors.InvalidArgumentError)
            region.close()
            assert sess.run(total, {x: np.ones((2, 784), np.float32)}) == 2 * 784  # the server is up
